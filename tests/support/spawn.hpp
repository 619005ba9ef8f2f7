#pragma once
// Starting a test server or helper program: argv[0] found on PATH, its
// stdout and stderr to one file (appended or truncated).

#include <fcntl.h>
#include <spawn.h>
#include <sys/types.h>

#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace swarm::test {

enum class Output { append, truncate };

/// The new process's pid; throws naming the program when it cannot start.
inline pid_t spawn_process(const std::vector<std::string>& argv, const std::filesystem::path& output,
                           Output mode = Output::append) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const int flags = O_WRONLY | O_CREAT | (mode == Output::append ? O_APPEND : O_TRUNC);
  posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), flags, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

}  // namespace swarm::test

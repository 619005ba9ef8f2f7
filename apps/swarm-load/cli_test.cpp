// The swarm-load binary as scripts use it: the command line contract, the
// JSON it writes, and its exit statuses.

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

extern char** environ;

namespace {

struct Outcome {
  int status = -1;
  std::string out, err;
};

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class SwarmLoadCli : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("swarm-load-cli-" + std::to_string(::getpid()) + "-" +
            testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs swarm-load with `args`, stdout and stderr to files.
  Outcome run(std::vector<std::string> args) {
    args.insert(args.begin(), SWARM_LOAD_BINARY);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string out = (dir_ / "stdout").string(), err = (dir_ / "stderr").string();
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = 0;
    Outcome o;
    if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) == 0) {
      int status = 0;
      waitpid(pid, &status, 0);
      o.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    posix_spawn_file_actions_destroy(&fa);
    o.out = slurp(out);
    o.err = slurp(err);
    return o;
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

TEST_F(SwarmLoadCli, RunWritesTheJsonContractAndComparingAFileWithItselfPasses) {
  const std::string f = path("run.json");
  // The documented contract, with a rate small enough for sanitizer builds.
  Outcome r = run({"run", "--scenario", "pipeline", "--seconds", "0.5", "--json", f, "--rate", "20k", "--warmup", "0.2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("latency p99"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("[measure"), std::string::npos) << r.err;  // the progress line
  nlohmann::json j = nlohmann::json::parse(slurp(f));
  EXPECT_EQ(j["scenario"], "pipeline");
  EXPECT_EQ(j["target_rate"], 20000.0);
  EXPECT_GT(j["throughput_msgs_per_s"].get<double>(), 0);
  for (const char* q : {"p50", "p90", "p99", "p999", "max"}) EXPECT_TRUE(j["latency_seconds"][q].is_number()) << q;
  EXPECT_TRUE(j["dropped"].contains("mailbox_full"));
  EXPECT_EQ(j["histogram"]["count"], j["observations"]);
  EXPECT_EQ(j["sent"], 10000);

  Outcome same = run({"compare", f, f});
  EXPECT_EQ(same.status, 0) << same.out << same.err;
  EXPECT_NE(same.out.find("no regression beyond 10%"), std::string::npos) << same.out;

  // Half the throughput is a regression: exit status 1.
  j["throughput_msgs_per_s"] = j["throughput_msgs_per_s"].get<double>() / 2;
  std::ofstream(path("worse.json")) << j.dump();
  Outcome worse = run({"compare", f, path("worse.json")});
  EXPECT_EQ(worse.status, 1) << worse.out;
  EXPECT_NE(worse.out.find("REGRESSION"), std::string::npos) << worse.out;
  // ... unless only latency is judged.
  EXPECT_EQ(run({"compare", f, path("worse.json"), "--metrics", "p50,p99"}).status, 0);
}

TEST_F(SwarmLoadCli, BadInputExitsWithTwoAndSaysWhatIsWrong) {
  Outcome unknown = run({"run", "--scenario", "nope"});
  EXPECT_EQ(unknown.status, 2);
  EXPECT_NE(unknown.err.find("unknown scenario \"nope\""), std::string::npos) << unknown.err;

  Outcome field = run({"run", "--scenario", "pipeline", "--stages", "0"});
  EXPECT_EQ(field.status, 2);
  EXPECT_NE(field.err.find("stages = 0 is out of range (allowed: 1..10000)"), std::string::npos) << field.err;

  Outcome set = run({"run", "--scenario", "pipeline", "--set", "overflow=spill"});
  EXPECT_EQ(set.status, 2);
  EXPECT_NE(set.err.find("overflow = \"spill\" is not allowed"), std::string::npos) << set.err;

  // Checked before the run, not after it: the rows are written at the end.
  Outcome dsn = run({"run", "--scenario", "pipeline", "--results-dsn", "host=127.0.0.1 port=abc"});
  EXPECT_EQ(dsn.status, 2);
  EXPECT_NE(dsn.err.find("--results-dsn: storage: invalid Postgres DSN: port: got \"abc\""), std::string::npos) << dsn.err;

  EXPECT_EQ(run({"run"}).status, 2);                      // --scenario is required
  EXPECT_EQ(run({"frobnicate"}).status, 2);                // no such subcommand
  Outcome missing = run({"compare", path("a.json"), path("b.json")});
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.err.find("cannot read"), std::string::npos) << missing.err;
  std::ofstream(path("junk.json")) << "{ not json";
  EXPECT_EQ(run({"compare", path("junk.json"), path("junk.json")}).status, 2);
  EXPECT_EQ(run({"compare", path("junk.json"), path("junk.json"), "--threshold", "ten"}).status, 2);
  EXPECT_EQ(run({"capacity", "--scenario", "pipeline", "--slo-p99", "soon"}).status, 2);
}

TEST_F(SwarmLoadCli, HelpAndListTellTheTruth) {
  Outcome help = run({"--help"});
  EXPECT_EQ(help.status, 0);
  for (const char* cmd : {"run", "compare", "capacity", "list"}) {
    EXPECT_NE(help.out.find(cmd), std::string::npos) << cmd << "\n" << help.out;
  }
  Outcome run_help = run({"run", "--help"});
  EXPECT_EQ(run_help.status, 0);
  for (const char* flag : {"--scenario", "--rate", "--seconds", "--json", "--admin", "--steps", "--closed-loop"}) {
    EXPECT_NE(run_help.out.find(flag), std::string::npos) << flag;
  }
  Outcome list = run({"list", "--fields"});
  EXPECT_EQ(list.status, 0);
  for (const char* name : {"pipeline", "fanout", "topics", "request-reply", "mixed", "queue_groups", "work_ns"}) {
    EXPECT_NE(list.out.find(name), std::string::npos) << name;
  }
}

TEST_F(SwarmLoadCli, AYamlScenarioRunsAndPlotsAreWritten) {
  std::ofstream(path("tiny.yaml")) << "base: fanout\nsubscribers: 3\nrate: 2000\nseconds: 0.3\nwarmup: 0.1\n";
  Outcome r = run({"run", "--scenario", path("tiny.yaml"), "--json", path("tiny.json"), "--plot", path("tiny"),
                   "--quiet"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("[measure"), std::string::npos);  // --quiet
  EXPECT_TRUE(std::filesystem::exists(path("tiny-spectrum.svg")));
  EXPECT_TRUE(std::filesystem::exists(path("tiny-timeline.svg")));
  nlohmann::json j = nlohmann::json::parse(slurp(path("tiny.json")));
  EXPECT_EQ(j["scenario"], "tiny");
  EXPECT_EQ(j["observations"], 3 * j["completed"].get<int>());
}

TEST_F(SwarmLoadCli, AnSloMissExitsWithOne) {
  // Handlers burning 2 ms each cannot keep p99 under 1 us.
  Outcome r = run({"run", "--scenario", "pipeline", "--rate", "200", "--seconds", "0.2", "--warmup", "0", "--work-ns",
                   "2000000", "--lanes", "1", "--stages", "1", "--slo-p99", "1us", "--quiet"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("is above the SLO"), std::string::npos) << r.err;
}

}  // namespace

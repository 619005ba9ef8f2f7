// Registered names: an agent found by a stable name rather than its ref.
// Names are released when their agent exits.

#include "runtime/detail/runtime_core.hpp"

namespace swarm {

using detail::RuntimeCore;

namespace {
constexpr std::size_t kMaxNameBytes = 255;

Result<void> check_name(std::string_view name) {
  if (name.empty()) return unexpected(std::string("runtime: register_name: the name is empty"));
  if (name.size() > kMaxNameBytes) {
    return unexpected("runtime: register_name: name of " + std::to_string(name.size()) + " bytes is longer than " +
                      std::to_string(kMaxNameBytes));
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c <= ' ' || c == 0x7f) {
      return unexpected("runtime: register_name: invalid name \"" + std::string(name) +
                        "\": space or control character at position " + std::to_string(i));
    }
  }
  return {};
}
}  // namespace

Result<void> Agent::register_name(std::string_view name) {
  if (auto r = core_.rt->register_name(core_.self, name); !r) return r;
  if (!core_.extras) core_.extras = std::make_unique<detail::AgentExtras>();
  core_.extras->names.emplace_back(name);
  return {};
}

Result<void> RuntimeCore::register_name(AgentRef agent, std::string_view name) {
  if (auto r = check_name(name); !r) return r;
  if (!alive(agent)) return unexpected("runtime: register_name \"" + std::string(name) + "\": agent " + to_string(agent) + " is gone");
  MutexLock lock(names_mu_);
  auto it = names_.find(name);
  if (it != names_.end() && it->second != agent && alive(it->second)) {
    return unexpected("runtime: register_name: \"" + std::string(name) + "\" is already registered to " +
                      to_string(it->second));
  }
  if (directory_ != nullptr && (it == names_.end() || it->second != agent)) {
    if (AgentRef remote = directory_->resolve(name); remote.valid()) {
      return unexpected("runtime: register_name: \"" + std::string(name) + "\" is already registered to " +
                        to_string(remote) + " on another node");
    }
  }
  if (it != names_.end()) {
    it->second = agent;
  } else {
    names_.emplace(std::string(name), agent);
  }
  if (directory_ != nullptr) directory_->changed(name, agent, true);
  return {};
}

bool RuntimeCore::unregister_name(std::string_view name) {
  MutexLock lock(names_mu_);
  auto it = names_.find(name);
  if (it == names_.end()) return false;
  if (directory_ != nullptr) directory_->changed(name, it->second, false);
  names_.erase(it);
  return true;
}

bool RuntimeCore::unregister_name(std::string_view name, AgentRef holder) {
  MutexLock lock(names_mu_);
  auto it = names_.find(name);
  if (it == names_.end() || it->second != holder) return false;
  if (directory_ != nullptr) directory_->changed(name, holder, false);
  names_.erase(it);
  return true;
}

AgentRef RuntimeCore::whereis(std::string_view name) const {
  MutexLock lock(names_mu_);
  auto it = names_.find(name);
  if (it != names_.end() && alive(it->second)) return it->second;
  return directory_ != nullptr ? directory_->resolve(name) : AgentRef{};
}

void RuntimeCore::set_name_directory(NameDirectory* directory) {
  MutexLock lock(names_mu_);  // no call to the old one is running after this
  directory_ = directory;
  if (directory_ == nullptr) return;
  for (const auto& [name, holder] : names_) {
    if (alive(holder)) directory_->changed(name, holder, true);
  }
}

void RuntimeCore::release_names(AgentRef agent, const std::vector<std::string>& names) noexcept {
  MutexLock lock(names_mu_);
  for (const std::string& n : names) {
    auto it = names_.find(n);
    if (it == names_.end() || it->second != agent) continue;
    if (directory_ != nullptr) directory_->changed(n, agent, false);
    names_.erase(it);
  }
}

}  // namespace swarm

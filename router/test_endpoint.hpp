#pragma once
// A recording Endpoint for router tests: what each address received.

#include <map>
#include <mutex>
#include <vector>

#include "router/router.hpp"

namespace swarm::router::test {

class RecordingEndpoint : public Endpoint {
 public:
  DeliverStatus deliver(const Delivery& d) noexcept override {
    std::lock_guard lock(mu_);
    if (full_.count(d.address) != 0) return DeliverStatus::mailbox_full;
    if (dead_.count(d.address) != 0) return DeliverStatus::dead;
    received_[d.address].push_back(d.topic);
    last_payload_ = d.payload;
    return DeliverStatus::ok;
  }
  std::size_t depth(std::uint64_t address) const noexcept override {
    std::lock_guard lock(mu_);
    auto it = depths_.find(address);
    return it == depths_.end() ? 0 : it->second;
  }
  std::size_t count(std::uint64_t address) const {
    std::lock_guard lock(mu_);
    auto it = received_.find(address);
    return it == received_.end() ? 0 : it->second.size();
  }
  std::map<std::uint64_t, std::vector<TopicId>> take() {
    std::lock_guard lock(mu_);
    return std::exchange(received_, {});
  }
  void set_full(std::uint64_t a) { std::lock_guard lock(mu_); full_[a] = true; }
  void set_dead(std::uint64_t a) { std::lock_guard lock(mu_); dead_[a] = true; }
  void set_depth(std::uint64_t a, std::size_t d) { std::lock_guard lock(mu_); depths_[a] = d; }
  Payload last_payload() const { std::lock_guard lock(mu_); return last_payload_; }

 private:
  mutable std::mutex mu_;
  std::map<std::uint64_t, std::vector<TopicId>> received_;
  std::map<std::uint64_t, bool> full_, dead_;
  std::map<std::uint64_t, std::size_t> depths_;
  Payload last_payload_;
};

}  // namespace swarm::router::test

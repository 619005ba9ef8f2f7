#include "metrics/admin_server.hpp"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "metrics/registry.hpp"

namespace swarm::metrics {
namespace {

constexpr auto kDeadline = std::chrono::seconds(10);

// A one-way signal between threads, waited on with a deadline.
class Signal {
 public:
  void set() {
    {
      std::lock_guard lock(mu_);
      set_ = true;
    }
    cv_.notify_all();
  }
  bool wait() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return set_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
};

int status_of(std::uint16_t port, const char* path) {
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get(path);
  return r ? r->status : -1;
}

TEST(AdminServer, DynamicPagesComeAndGo) {
  Registry registry;
  AdminServer admin(registry, {"127.0.0.1", 0});
  admin.start();
  EXPECT_EQ(status_of(admin.port(), "/debug/things"), 404);
  admin.set_dynamic_page("/debug/things", [](const AdminRequest& r) {
    return AdminResponse{200, "text/plain", "things for " + r.param("who", "nobody")};
  });
  httplib::Client c("127.0.0.1", admin.port());
  auto r = c.Get("/debug/things?who=me");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "things for me");
  admin.remove_dynamic_page("/debug/things");
  EXPECT_EQ(status_of(admin.port(), "/debug/things"), 404);
  admin.remove_dynamic_page("/debug/things");  // not there: nothing to wait for
}

// What a page uses (here `owner`) may be destroyed as soon as
// remove_dynamic_page returns: it waits for the requests still in the page.
TEST(AdminServer, RemovingADynamicPageWaitsForTheRequestsInIt) {
  Registry registry;
  AdminServer admin(registry, {"127.0.0.1", 0});
  admin.start();
  const std::uint16_t port = admin.port();
  auto owner = std::make_unique<int>(42);
  Signal in_page, release;
  std::atomic<bool> owner_gone{false};
  admin.set_dynamic_page("/debug/slow", [&, p = owner.get()](const AdminRequest&) {
    in_page.set();
    release.wait();
    return AdminResponse{200, "text/plain", std::to_string(*p)};
  });
  admin.set_dynamic_page("/debug/quick", [](const AdminRequest&) { return AdminResponse{200, "text/plain", "ok"}; });
  // One request first, alone: cpp-httplib's function-local statics are then
  // set up before requests run at once (ThreadSanitizer cannot see the
  // static guard in the uninstrumented library).
  ASSERT_EQ(status_of(port, "/debug/quick"), 200);

  std::string body;
  std::thread request([&] {
    httplib::Client c("127.0.0.1", port);
    if (auto r = c.Get("/debug/slow")) body = r->body;
  });
  // EXPECT from here on: the threads are released and joined whatever happens.
  EXPECT_TRUE(in_page.wait());
  std::thread remover([&] {
    admin.remove_dynamic_page("/debug/slow");
    owner.reset();
    owner_gone = true;
  });
  // Unlisted (so the remover is past the erase; asking for the page itself
  // could enter it first), gone for new requests, while the first one is
  // still in it; other pages still answer.
  // Nothing to block on here: each look is an HTTP round trip.
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  bool unlisted = false;
  while (!unlisted && std::chrono::steady_clock::now() < deadline) {
    httplib::Client c("127.0.0.1", port);
    auto index = c.Get("/index.txt");
    unlisted = index && index->body.find("/debug/slow") == std::string::npos;
  }
  EXPECT_TRUE(unlisted);
  EXPECT_EQ(status_of(port, "/debug/slow"), 404);
  EXPECT_EQ(status_of(port, "/debug/quick"), 200);
  EXPECT_FALSE(owner_gone) << "remove_dynamic_page returned while a request was in the page";
  release.set();
  request.join();
  remover.join();
  EXPECT_EQ(body, "42");
  EXPECT_TRUE(owner_gone);
}

}  // namespace
}  // namespace swarm::metrics

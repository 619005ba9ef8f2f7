#include "metrics/admin_server.hpp"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "metrics/registry.hpp"

namespace swarm::metrics {
namespace {

// Polls `cond` until true or 10 s pass; returns its last value.
template <class F>
bool eventually(F cond) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

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
  std::atomic<bool> in_page{false}, release{false}, owner_gone{false};
  admin.set_dynamic_page("/debug/slow", [&, p = owner.get()](const AdminRequest&) {
    in_page = true;
    while (!release) std::this_thread::yield();
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
  EXPECT_TRUE(eventually([&] { return in_page.load(); }));
  std::thread remover([&] {
    admin.remove_dynamic_page("/debug/slow");
    owner.reset();
    owner_gone = true;
  });
  // Unlisted (so the remover is past the erase; asking for the page itself
  // could enter it first), gone for new requests, while the first one is
  // still in it; other pages still answer.
  EXPECT_TRUE(eventually([&] {
    httplib::Client c("127.0.0.1", port);
    auto index = c.Get("/index.txt");
    return index && index->body.find("/debug/slow") == std::string::npos;
  }));
  EXPECT_EQ(status_of(port, "/debug/slow"), 404);
  EXPECT_EQ(status_of(port, "/debug/quick"), 200);
  EXPECT_FALSE(owner_gone) << "remove_dynamic_page returned while a request was in the page";
  release = true;
  request.join();
  remover.join();
  EXPECT_EQ(body, "42");
  EXPECT_TRUE(owner_gone);
}

}  // namespace
}  // namespace swarm::metrics

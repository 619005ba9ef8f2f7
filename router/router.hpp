#pragma once
// The topic router: who receives a message published on a topic.
//
// It knows nothing of agents: it delivers to Endpoints (all agents of a
// runtime, a remote node, ...), each subscriber being an endpoint plus an
// address inside it.
//
//   Router r;
//   r.subscribe("orders.*.created", {&endpoint, 42});
//   TopicId t = r.intern("orders.eu.created").value();
//   r.publish(t, Payload::of(order));          // by id: no hashing
//
// Read path (publish): lock-free. Topics are interned once; each topic caches
// its resolved subscriber set (one flat block), checked against two versions —
// the topic's own (bumped by exact subscriptions to it) and the wildcard
// generation (bumped by any wildcard subscription). A stale set is rebuilt
// under the writers' mutex; old sets are freed by epoch-based reclamation.
// Thread-safe: every member may be called from any thread, concurrently.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/mutex.hpp"
#include "base/payload.hpp"
#include "base/result.hpp"
#include "router/topic.hpp"

namespace swarm::router {

using TopicId = std::uint32_t;
using SubscriptionId = std::uint64_t;  // 0 = none

enum class DeliverStatus : std::uint8_t { ok, mailbox_full, dead };

/// What an endpoint receives; valid during deliver().
struct Delivery {
  std::uint64_t address;     // the subscriber's address inside its endpoint
  TopicId topic;
  std::uint32_t kind;        // user tag, passed through
  std::uint64_t sender;      // opaque, passed through (0 = none)
  std::uint32_t sender_node;  // opaque, passed through (the sender's node; 0 = this one)
  std::uint64_t correlation_id;  // opaque, passed through (0 = not a request)
  std::uint64_t deadline_ns;     // opaque, passed through (0 = none)
  const Payload& payload;    // shared by all receivers: copy it (a refcount for large payloads)
};

/// Something that accepts messages. deliver() may run on many threads at once.
class Endpoint {
 public:
  virtual ~Endpoint() = default;
  virtual DeliverStatus deliver(const Delivery& d) noexcept = 0;
  /// Queued messages at `address`, for least_loaded queue groups (0: unknown).
  virtual std::size_t depth(std::uint64_t address) const noexcept {
    (void)address;
    return 0;
  }
};

struct Subscriber {
  Endpoint* endpoint = nullptr;
  std::uint64_t address = 0;
  friend bool operator==(Subscriber, Subscriber) = default;
  friend auto operator<=>(Subscriber a, Subscriber b) {
    return a.endpoint != b.endpoint ? std::compare_three_way{}(a.endpoint, b.endpoint) : a.address <=> b.address;
  }
};

enum class GroupPolicy : std::uint8_t { round_robin, least_loaded };

/// Runs the parts of a large publish on more than one thread (the runtime's
/// workers); see PublishOptions::helper.
class FanoutHelper {
 public:
  using Part = void (*)(void* context, std::size_t part);
  /// Calls part(context, i) once for every i < parts, on this thread and
  /// perhaps others, and returns once every call has returned.
  virtual void run_parts(std::size_t parts, Part part, void* context) noexcept = 0;
  virtual ~FanoutHelper() = default;
};

struct RouterConfig {
  std::size_t max_topic_bytes = 256;
  std::size_t max_tokens = 16;
  std::size_t max_topics = 1'000'000;  // interned topics are kept for the router's life
  GroupPolicy group_policy = GroupPolicy::round_robin;
  bool dead_letter_topic = false;  // republish undelivered messages on "$dead.<topic>"
  // Cache each topic's resolved subscriber set (on by default). Off: every
  // publish resolves under the writers' mutex and allocates — the plain
  // version, kept for benchmarks and tests of the cache.
  bool result_cache = true;
  /// OK, or an error naming the field and the allowed values.
  Result<void> validate() const;
};

struct PublishOptions {
  std::uint32_t kind = 0;
  std::uint64_t sender = 0;
  std::uint32_t sender_node = 0;
  std::uint64_t correlation_id = 0;
  std::uint64_t deadline_ns = 0;
  // A message relayed from another node (cluster/): the relaying endpoint's
  // own subscribers are skipped (one hop, no loops), and only the plain
  // subscribers (relay_group empty) or one member of the group relay_group
  // receive it, as the sending node chose.
  const Endpoint* relayed_by = nullptr;
  std::string_view relay_group = {};
  // Shares a publish to at least kSharedFanoutMin plain subscribers out in
  // parts of kSharedFanoutPart or more, which `helper` may run on other
  // threads; the publish still returns once every delivery is made. None: one
  // thread delivers them all.
  FanoutHelper* helper = nullptr;
};
inline constexpr std::size_t kSharedFanoutPart = 64;
inline constexpr std::size_t kSharedFanoutMin = 2 * kSharedFanoutPart;

/// What the local subscribers of a router want, as another node sees it: one
/// entry per (pattern, queue group) with its number of subscribers.
struct InterestEntry {
  std::string pattern;
  std::string queue_group;  // empty: plain subscribers
  std::uint32_t subscribers = 0;
  friend bool operator==(const InterestEntry&, const InterestEntry&) = default;
  friend auto operator<=>(const InterestEntry&, const InterestEntry&) = default;
};

struct [[nodiscard]] PublishResult {
  std::uint32_t delivered = 0;
  std::uint32_t mailbox_full = 0;
  std::uint32_t dead = 0;
  bool no_subscriber = false;
};

/// Dead-letter reasons; values equal their metric label.
enum class DeadLetter : std::uint8_t { no_subscriber, mailbox_full, dead_agent };
inline constexpr int kDeadLetterReasons = 3;
std::string_view to_string(DeadLetter r);

/// Totals since construction. The hot-path counters are per-thread shards
/// summed here, so a publish writes no shared cache line.
struct RouterStats {
  std::uint64_t published = 0;  // publish() calls (by id or name), republished dead letters excluded
  std::uint64_t delivered = 0;  // deliveries an endpoint accepted (DeliverStatus::ok)
  std::uint64_t dead_letters[kDeadLetterReasons] = {};  // indexed by DeadLetter
  std::uint64_t republished = 0;  // dead letters delivered on "$dead.<topic>"
  std::uint64_t subscriptions = 0;
  std::uint64_t topics = 0;  // interned
};

/// One line of the /debug/topics page.
struct TopicSummary {
  TopicId id = 0;
  std::string name;
  std::uint32_t subscribers = 0;  // distinct plain subscribers a publish reaches
  std::uint32_t queue_groups = 0;  // matching queue groups (one delivery each)
};

class Router {
 public:
  /// Throws std::invalid_argument naming the field when `config` is bad.
  explicit Router(RouterConfig config = {});
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  /// The id of a publishable topic (validated), created on first use.
  Result<TopicId> intern(std::string_view topic);
  /// REQUIRES: id came from intern() of this router.
  std::string_view topic_name(TopicId id) const;

  Result<SubscriptionId> subscribe(std::string_view pattern, Subscriber s, std::string_view queue_group = {});
  bool unsubscribe(SubscriptionId id);
  /// Removes every subscription of `s` (e.g. when an agent exits); how many.
  std::size_t unsubscribe_all(Subscriber s);

  // -- hot path ---

  /// Delivers to every matching plain subscriber once and to one member of
  /// each matching queue group, passing the same `payload` to each. Never
  /// locks while the topic's cached set is current. An unknown id counts as
  /// no_subscriber.
  PublishResult publish(TopicId topic, const Payload& payload, PublishOptions options = {}) noexcept;
  /// The same by name: interns (validates) `topic` first; errors are those of intern().
  Result<PublishResult> publish(std::string_view topic, const Payload& payload, PublishOptions options = {});

  /// Returns once every publish that started before this call has finished:
  /// after unsubscribing, no delivery to the removed subscribers is running
  /// or will start (e.g. before an Endpoint is destroyed).
  void synchronize();

  /// How many deliveries a publish to `topic` would make now: plain
  /// subscribers plus one per queue group (0 for an unknown id). Resolves
  /// exactly as publish() does, without delivering.
  std::size_t receivers(TopicId topic) noexcept;

  // -- interest, for other nodes (cluster/) ---

  /// Bumped by every subscribe and unsubscribe: poll it to learn that
  /// interest() may have changed.
  std::uint64_t subscription_version() const noexcept { return subscription_version_.load(std::memory_order_acquire); }
  /// The subscriptions of every endpoint but `except`, aggregated by pattern
  /// and queue group, sorted.
  std::vector<InterestEntry> interest(const Endpoint* except) const;

  // -- observability ---

  RouterStats stats() const;
  /// Up to `limit` topics with the most receivers, most first (ties by id),
  /// for /debug/topics. Takes the writers' mutex; O(topics) when the cached
  /// sets are current, plus a trie walk for each stale one.
  std::vector<TopicSummary> top_topics(std::size_t limit = 100) const;
  const RouterConfig& config() const noexcept { return config_; }

 private:
  struct Resolved;
  struct TopicEntry;
  struct TopicName;
  struct Segment;
  struct Sub;
  struct TrieNode;
  struct NameTable;
  struct Shard;
  struct SubscriberHash {
    std::size_t operator()(Subscriber s) const noexcept;
  };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };

  static constexpr unsigned kSegmentBits = 12;  // 4,096 topics per segment
  static constexpr unsigned kShards = 64;       // counter shards, by epoch slot; the rest share one

  TopicEntry* entry(TopicId id) const noexcept;
  TopicName& name_of(TopicId id) const noexcept;  // REQUIRES: id < topics interned
  const Resolved* current(TopicId id, TopicEntry& e);
  const Resolved* rebuild(TopicId id, TopicEntry& e);
  Result<TopicId> intern_locked(std::string_view topic) SWARM_REQUIRES(mu_);
  void remove_locked(SubscriptionId id) SWARM_REQUIRES(mu_);
  void collect_locked(TopicId id, std::vector<Sub*>& out) const SWARM_REQUIRES(mu_);
  bool republish_dead(TopicId topic, const Payload& payload, const PublishOptions& options) noexcept;
  void publish_relayed(const Resolved& r, Delivery& d, const PublishOptions& options, PublishResult& res) noexcept;

  // -- constant after construction ---
  const RouterConfig config_;
  const TopicLimits limits_;
  const std::size_t segment_count_;                    // enough for max_topics
  std::unique_ptr<std::atomic<Segment*>[]> segments_;  // allocated on first use, never moved
  std::unique_ptr<Shard[]> shards_;                    // kShards + 1 (the shared overflow shard)

  // -- written under mu_, read lock-free (one cache line: rarely written) ---
  struct alignas(64) Versions {
    std::atomic<std::uint32_t> topics{0};                // ids below are complete and readable
    std::atomic<std::uint64_t> wildcard_generation{1};  // bumped by every wildcard (un)subscribe
  } published_;
  // Name -> id: an insert-only open-addressing table; readers probe without
  // locks; a full table is replaced by a bigger one (old ones kept: their sum
  // is less than the newest).
  std::atomic<NameTable*> names_;

  // -- own synchronization ---
  std::atomic<std::uint64_t> republished_{0};
  std::atomic<std::uint64_t> subscription_version_{0};

  // -- guarded by mu_ ---
  mutable Mutex mu_;
  std::vector<std::unique_ptr<NameTable>> name_tables_ SWARM_GUARDED_BY(mu_);
  std::uint32_t topic_count_ SWARM_GUARDED_BY(mu_) = 0;
  SubscriptionId next_sub_ SWARM_GUARDED_BY(mu_) = 1;
  std::unordered_map<SubscriptionId, std::unique_ptr<Sub>> subs_ SWARM_GUARDED_BY(mu_);
  std::unordered_map<TopicId, std::vector<Sub*>> exact_ SWARM_GUARDED_BY(mu_);
  std::unique_ptr<TrieNode> wildcards_ SWARM_GUARDED_BY(mu_);
  std::unordered_map<Subscriber, std::vector<SubscriptionId>, SubscriberHash> by_subscriber_ SWARM_GUARDED_BY(mu_);
};

}  // namespace swarm::router

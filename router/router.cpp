#include "router/router.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <thread>

#include "router/detail/epoch.hpp"

namespace swarm::router {

using detail::EpochDomain;

std::string_view to_string(DeadLetter r) {
  switch (r) {
    case DeadLetter::no_subscriber: return "no_subscriber";
    case DeadLetter::mailbox_full: return "mailbox_full";
    case DeadLetter::dead_agent: return "dead_agent";
  }
  return "unknown";
}

Result<void> RouterConfig::validate() const {
  if (max_topic_bytes < 1 || max_topic_bytes > 4096) {
    return unexpected("router: max_topic_bytes = " + std::to_string(max_topic_bytes) + " is out of range (allowed: 1..4096)");
  }
  if (max_tokens < 1 || max_tokens > 64) {
    return unexpected("router: max_tokens = " + std::to_string(max_tokens) + " is out of range (allowed: 1..64)");
  }
  constexpr std::size_t kTopicCap = std::size_t{1} << 28;
  if (max_topics < 1 || max_topics > kTopicCap) {
    return unexpected("router: max_topics = " + std::to_string(max_topics) + " is out of range (allowed: 1.." +
                      std::to_string(kTopicCap) + ")");
  }
  if (group_policy != GroupPolicy::round_robin && group_policy != GroupPolicy::least_loaded) {
    return unexpected(std::string("router: group_policy is not a policy (allowed: round_robin, least_loaded)"));
  }
  return {};
}

// -- internal structures ---

struct Router::Sub {
  SubscriptionId id;
  std::string pattern;
  std::string group;  // empty: none
  Subscriber who;
  bool wildcard;
  TopicId topic;  // exact subscriptions: the pattern's topic
};

struct Router::TrieNode {
  std::unordered_map<std::string, std::unique_ptr<TrieNode>, StringHash, std::equal_to<>> children;
  std::unique_ptr<TrieNode> star;
  std::vector<Sub*> here;  // patterns that end at this node
  std::vector<Sub*> rest;  // patterns "...this node.>": one or more tokens follow
  bool empty() const { return children.empty() && !star && here.empty() && rest.empty(); }
};

// A topic's subscribers, immutable once published: one allocation, aligned to
// a cache line, the de-duplicated plain subscribers stored right after the
// header (a topic with one subscriber fits in one line), so a publish touches
// the topic's entry, this block, and the endpoints.
struct Router::Resolved {
  struct Group {
    std::string name;
    std::vector<Subscriber> members;
    mutable std::atomic<std::uint32_t> next{0};  // round robin cursor
  };
  std::uint64_t topic_version = 0;
  std::uint64_t wildcard_generation = 0;
  std::unique_ptr<Group[]> groups;
  std::uint32_t group_count = 0;
  std::uint32_t plain_count = 0;

  static constexpr std::align_val_t kAlign{64};
  std::span<const Subscriber> plain() const noexcept {
    return {reinterpret_cast<const Subscriber*>(this + 1), plain_count};
  }
  std::size_t receivers() const noexcept { return std::size_t{plain_count} + group_count; }
  static Resolved* make(std::span<const Subscriber> plain) {
    static_assert(sizeof(Resolved) % alignof(Subscriber) == 0);
    void* mem = ::operator new(sizeof(Resolved) + plain.size() * sizeof(Subscriber), kAlign);
    auto* r = new (mem) Resolved();
    std::uninitialized_copy(plain.begin(), plain.end(), reinterpret_cast<Subscriber*>(r + 1));
    r->plain_count = static_cast<std::uint32_t>(plain.size());
    return r;
  }
  static void destroy(const Resolved* r) noexcept {
    if (r == nullptr) return;
    r->~Resolved();
    ::operator delete(const_cast<Resolved*>(r), kAlign);
  }
};

// What publish reads of a topic: 16 bytes, four topics to a cache line, so
// 10k topics take 160 KB. Names and tokens live apart (TopicName).
struct Router::TopicEntry {
  std::atomic<const Resolved*> resolved{nullptr};  // swapped under mu_ by rebuild()
  std::atomic<std::uint64_t> version{0};           // bumped under mu_ by exact (un)subscribe
};

// The cold half of a topic: written once by intern_locked() before the id is
// published, read-only afterwards (dead_topic excepted).
struct Router::TopicName {
  static constexpr TopicId kNone = ~TopicId{0};
  TopicId id = 0;
  std::size_t hash = 0;
  std::string name;
  std::vector<std::string_view> tokens;    // views into name
  std::atomic<TopicId> dead_topic{kNone};  // "$dead.<name>", once interned
};

struct Router::Segment {
  TopicEntry hot[std::size_t{1} << kSegmentBits];
  TopicName cold[std::size_t{1} << kSegmentBits];
  ~Segment() {
    for (TopicEntry& e : hot) Resolved::destroy(e.resolved.load(std::memory_order_relaxed));
  }
};

// Per-thread publish counters. A shard below kShards belongs to the one live
// thread holding that epoch slot, which updates it with a plain load + store
// (no read-modify-write); threads beyond share the last shard with fetch_add.
// stats() sums them with relaxed loads.
struct alignas(64) Router::Shard {
  std::atomic<std::uint64_t> published{0};
  std::atomic<std::uint64_t> delivered{0};
  std::atomic<std::uint64_t> dead_letters[kDeadLetterReasons] = {};
};

struct Router::NameTable {
  // The hash sits beside the pointer, so a probe reads only this array.
  struct Slot {
    std::atomic<std::size_t> hash{0};
    std::atomic<const TopicName*> topic{nullptr};
  };
  explicit NameTable(std::size_t capacity) : mask(capacity - 1), slots(new Slot[capacity]) {}
  const TopicName* find(std::string_view name, std::size_t hash) const noexcept {
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
      const TopicName* t = slots[i].topic.load(std::memory_order_acquire);
      if (t == nullptr) return nullptr;
      if (slots[i].hash.load(std::memory_order_relaxed) == hash && t->name == name) return t;
    }
  }
  void insert(const TopicName* t) noexcept {  // writers only; the table has room
    std::size_t i = t->hash & mask;
    while (slots[i].topic.load(std::memory_order_relaxed) != nullptr) i = (i + 1) & mask;
    slots[i].hash.store(t->hash, std::memory_order_relaxed);
    slots[i].topic.store(t, std::memory_order_release);  // publishes hash and topic
    ++count;
  }
  const std::size_t mask;
  std::unique_ptr<Slot[]> slots;
  std::size_t count = 0;  // writers only
};

std::size_t Router::SubscriberHash::operator()(Subscriber s) const noexcept {
  return std::hash<const void*>{}(s.endpoint) ^ (std::hash<std::uint64_t>{}(s.address) * 0x9e3779b97f4a7c15ULL);
}

// -- construction ---

namespace {
RouterConfig validated(const RouterConfig& c) {
  if (auto r = c.validate(); !r) throw std::invalid_argument(r.error());
  return c;
}
constexpr TopicId kSegmentSize = TopicId{1} << 12;
}  // namespace

Router::Router(RouterConfig config)
    : config_(validated(config)),
      limits_{config_.max_topic_bytes, config_.max_tokens},
      segment_count_((config_.max_topics + kSegmentSize - 1) / kSegmentSize),
      segments_(new std::atomic<Segment*>[segment_count_]),
      shards_(new Shard[kShards + 1]),
      wildcards_(std::make_unique<TrieNode>()) {
  for (std::size_t i = 0; i < segment_count_; ++i) segments_[i].store(nullptr, std::memory_order_relaxed);
  MutexLock lock(mu_);
  name_tables_.push_back(std::make_unique<NameTable>(1024));
  names_.store(name_tables_.back().get(), std::memory_order_release);
}

Router::~Router() {
  // Retired sets waiting in the epoch domain own only themselves: they may be
  // freed after the router is gone. Free what can be freed now.
  EpochDomain::global().collect();
  for (std::size_t i = 0; i < segment_count_; ++i) delete segments_[i].load(std::memory_order_relaxed);
}

// -- topics ---

Router::TopicEntry* Router::entry(TopicId id) const noexcept {
  // Acquire: the id's entry and name were complete before the count covered it.
  if (id >= published_.topics.load(std::memory_order_acquire)) return nullptr;
  return &segments_[id >> kSegmentBits].load(std::memory_order_relaxed)->hot[id & (kSegmentSize - 1)];
}

Router::TopicName& Router::name_of(TopicId id) const noexcept {
  return segments_[id >> kSegmentBits].load(std::memory_order_relaxed)->cold[id & (kSegmentSize - 1)];
}

std::string_view Router::topic_name(TopicId id) const {
  if (entry(id) == nullptr) return {};
  return name_of(id).name;
}

Result<TopicId> Router::intern(std::string_view topic) {
  const std::size_t hash = StringHash{}(topic);
  if (const TopicName* t = names_.load(std::memory_order_acquire)->find(topic, hash)) return t->id;
  MutexLock lock(mu_);
  return intern_locked(topic);
}

Result<TopicId> Router::intern_locked(std::string_view topic) {
  const std::size_t hash = StringHash{}(topic);
  NameTable* names = names_.load(std::memory_order_relaxed);
  if (const TopicName* t = names->find(topic, hash)) return t->id;
  if (auto r = validate_topic(topic, limits_); !r) return unexpected("router: " + r.error());
  if (topic_count_ >= config_.max_topics) {
    return unexpected("router: cannot add topic \"" + std::string(topic.substr(0, 64)) + "\": " +
                      std::to_string(topic_count_) + " topics exist, the limit (max_topics)");
  }
  const TopicId id = topic_count_;
  std::atomic<Segment*>& seg = segments_[id >> kSegmentBits];
  if (seg.load(std::memory_order_relaxed) == nullptr) seg.store(new Segment, std::memory_order_relaxed);
  TopicName& t = seg.load(std::memory_order_relaxed)->cold[id & (kSegmentSize - 1)];
  t.id = id;
  t.hash = hash;
  t.name = std::string(topic);
  t.tokens = split_tokens(t.name);
  if ((names->count + 1) * 2 > names->mask + 1) {  // keep the load under 1/2
    auto bigger = std::make_unique<NameTable>((names->mask + 1) * 2);
    for (std::size_t i = 0; i <= names->mask; ++i) {
      if (const TopicName* old = names->slots[i].topic.load(std::memory_order_relaxed)) bigger->insert(old);
    }
    names = bigger.get();
    name_tables_.push_back(std::move(bigger));
    names_.store(names, std::memory_order_release);
  }
  ++topic_count_;
  // The id becomes readable before its name becomes findable, so whoever
  // finds the name can use the id at once. Both stores release what is above.
  published_.topics.store(topic_count_, std::memory_order_release);
  names->insert(&t);
  return id;
}

// -- subscriptions ---

Result<SubscriptionId> Router::subscribe(std::string_view pattern, Subscriber s, std::string_view queue_group) {
  if (s.endpoint == nullptr) return unexpected(std::string("router: subscribe needs an endpoint (got none)"));
  if (auto r = validate_pattern(pattern, limits_); !r) return unexpected("router: " + r.error());
  if (!queue_group.empty()) {
    if (auto r = validate_topic(queue_group, limits_); !r) return unexpected("router: queue group: " + r.error());
  }
  MutexLock lock(mu_);
  auto sub = std::make_unique<Sub>(Sub{next_sub_, std::string(pattern), std::string(queue_group), s,
                                       has_wildcard(pattern), 0});
  if (sub->wildcard) {
    TrieNode* n = wildcards_.get();
    for (std::string_view t : split_tokens(pattern)) {
      if (t == ">") {
        n->rest.push_back(sub.get());
        n = nullptr;
        break;
      }
      std::unique_ptr<TrieNode>& next = t == "*" ? n->star : n->children[std::string(t)];
      if (!next) next = std::make_unique<TrieNode>();
      n = next.get();
    }
    if (n != nullptr) n->here.push_back(sub.get());
    published_.wildcard_generation.fetch_add(1, std::memory_order_acq_rel);
  } else {
    auto topic = intern_locked(pattern);
    if (!topic) return unexpected(topic.error());
    sub->topic = *topic;
    exact_[*topic].push_back(sub.get());
    entry(*topic)->version.fetch_add(1, std::memory_order_acq_rel);
  }
  const SubscriptionId id = next_sub_++;
  by_subscriber_[s].push_back(id);
  subs_.emplace(id, std::move(sub));
  subscription_version_.fetch_add(1, std::memory_order_acq_rel);
  return id;
}

bool Router::unsubscribe(SubscriptionId id) {
  MutexLock lock(mu_);
  auto it = subs_.find(id);
  if (it == subs_.end()) return false;
  auto& ids = by_subscriber_[it->second->who];
  std::erase(ids, id);
  if (ids.empty()) by_subscriber_.erase(it->second->who);
  remove_locked(id);
  return true;
}

std::size_t Router::unsubscribe_all(Subscriber s) {
  MutexLock lock(mu_);
  auto it = by_subscriber_.find(s);
  if (it == by_subscriber_.end()) return 0;
  std::vector<SubscriptionId> ids = std::move(it->second);
  by_subscriber_.erase(it);
  for (SubscriptionId id : ids) remove_locked(id);
  return ids.size();
}

void Router::remove_locked(SubscriptionId id) {
  subscription_version_.fetch_add(1, std::memory_order_acq_rel);
  auto it = subs_.find(id);
  Sub* sub = it->second.get();
  if (sub->wildcard) {
    // Walk down recording the path, remove, then prune empty nodes bottom-up.
    std::vector<std::pair<TrieNode*, std::string_view>> path;
    TrieNode* n = wildcards_.get();
    for (std::string_view t : split_tokens(sub->pattern)) {
      if (t == ">") {
        std::erase(n->rest, sub);
        n = nullptr;
        break;
      }
      path.emplace_back(n, t);
      n = t == "*" ? n->star.get() : n->children.find(t)->second.get();
    }
    if (n != nullptr) std::erase(n->here, sub);
    for (auto p = path.rbegin(); p != path.rend(); ++p) {
      auto [parent, token] = *p;
      std::unique_ptr<TrieNode>& child = token == "*" ? parent->star : parent->children.find(token)->second;
      if (!child->empty()) break;
      if (token == "*") {
        parent->star.reset();
      } else {
        parent->children.erase(parent->children.find(token));
      }
    }
    published_.wildcard_generation.fetch_add(1, std::memory_order_acq_rel);
  } else {
    auto& list = exact_[sub->topic];
    std::erase(list, sub);
    if (list.empty()) exact_.erase(sub->topic);
    entry(sub->topic)->version.fetch_add(1, std::memory_order_acq_rel);
  }
  subs_.erase(it);
}

// -- resolution ---

namespace {
void match(const auto& node, const std::vector<std::string_view>& tokens, std::size_t i, auto& out) {
  if (i == tokens.size()) {
    out.insert(out.end(), node.here.begin(), node.here.end());
    return;
  }
  out.insert(out.end(), node.rest.begin(), node.rest.end());  // '>' takes tokens i.. (at least one)
  if (auto it = node.children.find(tokens[i]); it != node.children.end()) match(*it->second, tokens, i + 1, out);
  if (node.star) match(*node.star, tokens, i + 1, out);
}
}  // namespace

void Router::collect_locked(TopicId id, std::vector<Sub*>& out) const {
  if (auto it = exact_.find(id); it != exact_.end()) out = it->second;
  match(*wildcards_, name_of(id).tokens, 0, out);
}

const Router::Resolved* Router::current(TopicId id, TopicEntry& e) {
  const Resolved* r = e.resolved.load(std::memory_order_acquire);
  if (config_.result_cache && r != nullptr && r->topic_version == e.version.load(std::memory_order_acquire) &&
      r->wildcard_generation == published_.wildcard_generation.load(std::memory_order_acquire)) {
    return r;
  }
  return rebuild(id, e);
}

const Router::Resolved* Router::rebuild(TopicId id, TopicEntry& e) {
  MutexLock lock(mu_);
  // Versions only change under mu_, so they are stable while we build.
  const std::uint64_t tv = e.version.load(std::memory_order_relaxed);
  const std::uint64_t wg = published_.wildcard_generation.load(std::memory_order_relaxed);
  const Resolved* old = e.resolved.load(std::memory_order_relaxed);
  if (config_.result_cache && old != nullptr && old->topic_version == tv && old->wildcard_generation == wg) {
    return old;  // another publisher rebuilt it meanwhile
  }

  std::vector<Sub*> subs;
  collect_locked(id, subs);
  std::vector<Subscriber> plain;
  std::vector<Sub*> grouped;
  for (Sub* s : subs) {
    if (s->group.empty()) {
      plain.push_back(s->who);
    } else {
      grouped.push_back(s);
    }
  }
  // Set semantics: a subscriber matched by several of its plain subscriptions
  // appears once; likewise once per group.
  std::sort(plain.begin(), plain.end());
  plain.erase(std::unique(plain.begin(), plain.end()), plain.end());
  std::unique_ptr<Resolved, void (*)(const Resolved*)> r(Resolved::make(plain), Resolved::destroy);
  r->topic_version = tv;
  r->wildcard_generation = wg;
  std::sort(grouped.begin(), grouped.end(), [](const Sub* a, const Sub* b) {
    return a->group != b->group ? a->group < b->group : a->who < b->who;
  });
  std::uint32_t groups = 0;
  for (std::size_t i = 0; i < grouped.size(); ++i) groups += i == 0 || grouped[i]->group != grouped[i - 1]->group;
  r->groups = std::make_unique<Resolved::Group[]>(groups);
  r->group_count = groups;
  std::size_t g = 0;
  for (std::size_t i = 0; i < grouped.size(); ++i) {
    if (i > 0 && grouped[i]->group != grouped[i - 1]->group) ++g;
    if (r->groups[g].name.empty()) r->groups[g].name = grouped[i]->group;
    auto& members = r->groups[g].members;
    if (members.empty() || members.back() != grouped[i]->who) members.push_back(grouped[i]->who);
  }
  // A topic's first set starts its cursors at a member picked by the topic id:
  // with every cursor at 0, a group subscribed by wildcard would get each
  // newly seen topic's first message on its first member (all of them, when
  // topics are used once). Each group's cursor then carries over from the set
  // this one replaces: a fresh cursor would restart, which under subscription
  // churn (or with the cache off) gives one member more than its share. Both
  // sets are sorted by name.
  for (std::uint32_t i = 0; i < groups; ++i) {
    r->groups[i].next.store(static_cast<std::uint32_t>((std::uint64_t{id} * 0x9E3779B97F4A7C15ull) >> 40),
                            std::memory_order_relaxed);
  }
  if (old != nullptr) {
    for (std::uint32_t i = 0, j = 0; i < groups && j < old->group_count;) {
      const int c = r->groups[i].name.compare(old->groups[j].name);
      if (c == 0) r->groups[i].next.store(old->groups[j].next.load(std::memory_order_relaxed), std::memory_order_relaxed);
      i += c <= 0;
      j += c >= 0;
    }
  }

  const Resolved* fresh = r.release();
  e.resolved.store(fresh, std::memory_order_release);
  if (old != nullptr) EpochDomain::global().retire([old] { Resolved::destroy(old); });
  return fresh;
}

void Router::synchronize() {
  // Publishes hold an epoch guard while they deliver: once a retired marker is
  // collected, every reader that began before it has left.
  auto done = std::make_shared<std::atomic<bool>>(false);
  EpochDomain::global().retire([done] { done->store(true, std::memory_order_release); });
  while (!done->load(std::memory_order_acquire)) {
    EpochDomain::global().collect();
    if (!done->load(std::memory_order_acquire)) std::this_thread::yield();
  }
}

std::size_t Router::receivers(TopicId topic) noexcept {
  EpochDomain::Guard guard(EpochDomain::global());
  TopicEntry* e = entry(topic);
  return e == nullptr ? 0 : current(topic, *e)->receivers();
}

// -- publishing ---

namespace {
// One delivery of a publish, added to its result.
[[gnu::always_inline]] inline void deliver_counted(Subscriber s, Delivery& d, PublishResult& res) noexcept {
  d.address = s.address;
  switch (s.endpoint->deliver(d)) {
    case DeliverStatus::ok: ++res.delivered; break;
    case DeliverStatus::mailbox_full: ++res.mailbox_full; break;
    case DeliverStatus::dead: ++res.dead; break;
  }
}

// A publish's plain subscribers in parts run by options.helper (see
// PublishOptions::helper). Each part counts into a local result and writes its
// slot once: parts on other threads must not share a cache line per delivery.
void deliver_shared(std::span<const Subscriber> subs, const Delivery& d, FanoutHelper& helper,
                    PublishResult& res) noexcept {
  constexpr std::size_t kMaxParts = 64;
  struct Shared {
    std::span<const Subscriber> subs;
    const Delivery& d;
    std::size_t parts;
    PublishResult results[kMaxParts];
  } shared{subs, d, std::min(kMaxParts, subs.size() / kSharedFanoutPart), {}};
  helper.run_parts(shared.parts, [](void* context, std::size_t part) {
    auto& s = *static_cast<Shared*>(context);
    Delivery delivery = s.d;
    PublishResult local;
    const std::size_t end = (part + 1) * s.subs.size() / s.parts;
    for (std::size_t i = part * s.subs.size() / s.parts; i < end; ++i) deliver_counted(s.subs[i], delivery, local);
    s.results[part] = local;
  }, &shared);
  for (std::size_t i = 0; i < shared.parts; ++i) {
    res.delivered += shared.results[i].delivered;
    res.mailbox_full += shared.results[i].mailbox_full;
    res.dead += shared.results[i].dead;
  }
}
}  // namespace

PublishResult Router::publish(TopicId topic, const Payload& payload, PublishOptions options) noexcept {
  PublishResult res;
  {
    EpochDomain::Guard guard(EpochDomain::global());
    if (TopicEntry* e = entry(topic)) {
      const Resolved* r = current(topic, *e);
      Delivery d{0, topic, options.kind, options.sender, options.sender_node, options.correlation_id,
                 options.deadline_ns, payload};
      auto send = [&](Subscriber s) { deliver_counted(s, d, res); };
      if (options.relayed_by != nullptr) [[unlikely]] {
        publish_relayed(*r, d, options, res);
      } else {
        if (options.helper != nullptr && r->plain_count >= kSharedFanoutMin) {
          deliver_shared(r->plain(), d, *options.helper, res);
        } else {
          for (Subscriber s : r->plain()) send(s);
        }
        for (std::uint32_t i = 0; i < r->group_count; ++i) {
          const Resolved::Group& g = r->groups[i];
          const std::uint32_t turn = g.next.fetch_add(1, std::memory_order_relaxed);
          std::size_t pick = turn % g.members.size();
          if (config_.group_policy == GroupPolicy::least_loaded) {
            // Scan from the round-robin position so ties spread evenly.
            std::size_t best = SIZE_MAX;
            for (std::size_t k = 0; k < g.members.size() && best != 0; ++k) {
              std::size_t m = (turn + k) % g.members.size();
              std::size_t depth = g.members[m].endpoint->depth(g.members[m].address);
              if (depth < best) {
                best = depth;
                pick = m;
              }
            }
          }
          send(g.members[pick]);
        }
      }
    }
    res.no_subscriber = res.delivered + res.mailbox_full + res.dead == 0;

    // Count in this thread's shard (see Shard), still inside the guard: the
    // slot index is ours until the thread exits.
    const unsigned slot = guard.slot_index();
    Shard& sh = shards_[slot < kShards ? slot : kShards];
    auto add = [shared = slot >= kShards](std::atomic<std::uint64_t>& c, std::uint64_t n) {
      if (shared) {
        c.fetch_add(n, std::memory_order_relaxed);
      } else {
        c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
      }
    };
    add(sh.published, 1);
    add(sh.delivered, res.delivered);
    if (res.no_subscriber || res.mailbox_full != 0 || res.dead != 0) [[unlikely]] {
      add(sh.dead_letters[static_cast<int>(DeadLetter::no_subscriber)], res.no_subscriber ? 1 : 0);
      add(sh.dead_letters[static_cast<int>(DeadLetter::mailbox_full)], res.mailbox_full);
      add(sh.dead_letters[static_cast<int>(DeadLetter::dead_agent)], res.dead);
    }
  }
  if (config_.dead_letter_topic && (res.no_subscriber || res.mailbox_full != 0 || res.dead != 0)) [[unlikely]] {
    if (republish_dead(topic, payload, options)) republished_.fetch_add(1, std::memory_order_relaxed);
  }
  return res;
}

// A message another node relayed here: to the plain subscribers or to one
// member of one group (round robin), never back to the relaying endpoint.
void Router::publish_relayed(const Resolved& r, Delivery& d, const PublishOptions& options,
                             PublishResult& res) noexcept {
  auto send = [&](Subscriber s) { deliver_counted(s, d, res); };
  if (options.relay_group.empty()) {
    for (Subscriber s : r.plain()) {
      if (s.endpoint != options.relayed_by) send(s);
    }
    return;
  }
  for (std::uint32_t i = 0; i < r.group_count; ++i) {
    const Resolved::Group& g = r.groups[i];
    if (g.name != options.relay_group) continue;
    const std::uint32_t turn = g.next.fetch_add(1, std::memory_order_relaxed);
    for (std::size_t k = 0; k < g.members.size(); ++k) {
      const Subscriber& s = g.members[(turn + k) % g.members.size()];
      if (s.endpoint != options.relayed_by) return send(s);
    }
    return;
  }
}

std::vector<InterestEntry> Router::interest(const Endpoint* except) const {
  std::map<std::pair<std::string_view, std::string_view>, std::uint32_t> counts;
  MutexLock lock(mu_);
  for (const auto& [id, sub] : subs_) {
    if (sub->who.endpoint != except) ++counts[{sub->pattern, sub->group}];
  }
  std::vector<InterestEntry> out;
  out.reserve(counts.size());
  for (const auto& [key, n] : counts) out.push_back({std::string(key.first), std::string(key.second), n});
  return out;
}

// Sends a message that missed a receiver on "$dead.<topic>", once per
// publish however many receivers it missed. Dead letters of dead letters are
// not republished (no loops) and a dead letter that nobody takes is not
// counted again. True if a receiver took it.
bool Router::republish_dead(TopicId topic, const Payload& payload, const PublishOptions& options) noexcept {
  if (entry(topic) == nullptr) return false;
  TopicName& t = name_of(topic);
  if (t.name.starts_with("$dead.")) return false;
  TopicId dead = t.dead_topic.load(std::memory_order_acquire);
  if (dead == TopicName::kNone) {
    try {
      auto id = intern("$dead." + t.name);
      if (!id) return false;  // over the length or token limit: counted, not republished
      dead = *id;
      t.dead_topic.store(dead, std::memory_order_release);  // later dead letters skip the string
    } catch (...) {
      return false;  // out of memory while interning: counted, not republished
    }
  }
  EpochDomain::Guard guard(EpochDomain::global());
  const Resolved* r = current(dead, *entry(dead));
  Delivery d{0, dead, options.kind, options.sender, options.sender_node, options.correlation_id, options.deadline_ns,
             payload};
  bool any = false;
  for (Subscriber s : r->plain()) {
    d.address = s.address;
    any |= s.endpoint->deliver(d) == DeliverStatus::ok;
  }
  for (std::uint32_t i = 0; i < r->group_count; ++i) {
    const Resolved::Group& g = r->groups[i];
    Subscriber s = g.members[g.next.fetch_add(1, std::memory_order_relaxed) % g.members.size()];
    d.address = s.address;
    any |= s.endpoint->deliver(d) == DeliverStatus::ok;
  }
  return any;
}

Result<PublishResult> Router::publish(std::string_view topic, const Payload& payload, PublishOptions options) {
  auto id = intern(topic);
  if (!id) return unexpected(id.error());
  return publish(*id, payload, options);
}

// -- observability ---

RouterStats Router::stats() const {
  RouterStats s;
  for (unsigned i = 0; i <= kShards; ++i) {
    const Shard& sh = shards_[i];
    s.published += sh.published.load(std::memory_order_relaxed);
    s.delivered += sh.delivered.load(std::memory_order_relaxed);
    for (int k = 0; k < kDeadLetterReasons; ++k) s.dead_letters[k] += sh.dead_letters[k].load(std::memory_order_relaxed);
  }
  s.republished = republished_.load(std::memory_order_relaxed);
  MutexLock lock(mu_);
  s.subscriptions = subs_.size();
  s.topics = topic_count_;
  return s;
}

std::vector<TopicSummary> Router::top_topics(std::size_t limit) const {
  std::vector<TopicSummary> out;
  if (limit == 0) return out;
  MutexLock lock(mu_);
  const std::uint64_t wg = published_.wildcard_generation.load(std::memory_order_relaxed);
  std::vector<Sub*> subs;
  std::vector<Subscriber> plain;
  std::vector<std::string_view> groups;
  for (TopicId id = 0; id < topic_count_; ++id) {
    TopicSummary line{id, {}, 0, 0};
    const TopicEntry& e = segments_[id >> kSegmentBits].load(std::memory_order_relaxed)->hot[id & (kSegmentSize - 1)];
    // Under mu_ the current set cannot be retired, so it can be read.
    const Resolved* r = e.resolved.load(std::memory_order_relaxed);
    if (r != nullptr && r->topic_version == e.version.load(std::memory_order_relaxed) && r->wildcard_generation == wg) {
      line.subscribers = r->plain_count;
      line.queue_groups = r->group_count;
    } else {
      subs.clear();
      plain.clear();
      groups.clear();
      collect_locked(id, subs);
      for (const Sub* sub : subs) {
        if (sub->group.empty()) {
          plain.push_back(sub->who);
        } else {
          groups.push_back(sub->group);
        }
      }
      std::sort(plain.begin(), plain.end());
      std::sort(groups.begin(), groups.end());
      line.subscribers = static_cast<std::uint32_t>(std::unique(plain.begin(), plain.end()) - plain.begin());
      line.queue_groups = static_cast<std::uint32_t>(std::unique(groups.begin(), groups.end()) - groups.begin());
    }
    out.push_back(std::move(line));
  }
  auto more = [](const TopicSummary& a, const TopicSummary& b) {
    std::uint64_t ra = std::uint64_t{a.subscribers} + a.queue_groups, rb = std::uint64_t{b.subscribers} + b.queue_groups;
    return ra != rb ? ra > rb : a.id < b.id;
  };
  const std::size_t n = std::min(limit, out.size());
  std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n), out.end(), more);
  out.resize(n);
  for (TopicSummary& line : out) line.name = name_of(line.id).name;
  return out;
}

}  // namespace swarm::router

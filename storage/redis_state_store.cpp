// The Redis state store: keys sharded over N connections, each owned by one
// writer thread that sends pipelined HSET batches (hiredis 0.14, blocking).
//
// Per shard (one connection, one writer), under the shard's mutex:
//   pending  newest unwritten state per key that the writer has not taken yet;
//            put() adds to it or replaces a state in it (coalescing).
//   taken    the generation being written: the whole of `pending`, swapped out
//            in O(1) when the writer is free. It is written max_batch states
//            per round trip; a state whose write failed is retried (after a
//            reconnect when the connection was lost) before the generation
//            counts as done, and a newer state of its key that arrived
//            meanwhile is pulled out of `pending` into its slot first.
// A key is in at most one slot of `taken`, and generation g+1 is taken only
// after generation g is fully acknowledged on the same connection: so an
// older state of a key is never written after a newer one. flush() waits for
// the generation that holds everything put before it.
//
// Locking: put(), load(), flush() and the writer take the shard's mutex for
// short, allocation-light sections; no I/O and no callback runs under it.
// Only the writer changes `taken` (always under the mutex); it reads `taken`
// without the mutex, others read it under the mutex (read/read: no race).

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/mutex.hpp"
#include "metrics/registry.hpp"
#include "storage/state_store.hpp"

namespace swarm::storage {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kHeartbeat{1000};  // an idle writer checks its connection this often

// Lets find() take a string_view without building a std::string.
struct KeyHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using StateMap = std::unordered_map<std::string, StoredState, KeyHash, std::equal_to<>>;
using Entry = StateMap::value_type;

struct LoadRequest {
  std::string key;
  StateStore::LoadCallback done;
};
using LoadResult = Result<std::optional<StoredState>>;

struct RedisFree {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using Connection = std::unique_ptr<redisContext, RedisFree>;

struct ReplyFree {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

timeval to_timeval(milliseconds ms) {
  return {static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>(ms.count() % 1000 * 1000)};
}

void observe(metrics::HistogramSnapshot& h, Clock::duration d) {
  const auto ns = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
  ++h.counts[metrics::Buckets::index(ns)];
  h.sum_ns += ns;
}

// hiredis writes with write(2): on a connection the server closed, that raises
// SIGPIPE, which would kill the process. Writers block it (the write fails with
// EPIPE instead) and discard the signal left pending on their thread.
void block_sigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void discard_pending_sigpipe() {
  sigset_t set, pending;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  if (sigpending(&pending) != 0 || sigismember(&pending, SIGPIPE) != 1) return;
  const timespec zero{0, 0};
  (void)sigtimedwait(&set, nullptr, &zero);
}

std::string_view reply_text(const redisReply* r) {
  return r->str != nullptr ? std::string_view(r->str, r->len) : std::string_view();
}

// A HGETALL reply as a state: nullopt for no hash; for something that is not
// a state hash, an error saying why.
LoadResult parse_state(const redisReply* r) {
  if (r->type == REDIS_REPLY_ERROR) return unexpected(std::string(reply_text(r)));
  if (r->type != REDIS_REPLY_ARRAY) return unexpected("unexpected reply type " + std::to_string(r->type));
  if (r->elements == 0) return std::optional<StoredState>();
  StoredState s;
  bool has_state = false, has_version = false, numbers_ok = true;
  for (std::size_t i = 0; i + 1 < r->elements; i += 2) {
    const std::string_view field = reply_text(r->element[i]), value = reply_text(r->element[i + 1]);
    const auto number = [&](auto& out) {
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
      numbers_ok = numbers_ok && ec == std::errc() && end == value.data() + value.size();
    };
    if (field == "state") {
      s.data.assign(value);
      has_state = true;
    } else if (field == "version") {
      number(s.version);
      has_version = true;
    } else if (field == "updated_ms") {
      number(s.updated_ms);
    }
  }
  if (!has_state || !has_version || !numbers_ok) {
    return unexpected(std::string("not a state hash: fields state, version and updated_ms, numbers in decimal"));
  }
  return std::optional<StoredState>(std::move(s));
}

// -- RESP encoding ---

// Appends commands to `out` in RESP, as redisFormatCommandArgv would, without
// its per-argument printf (which took half the writer's CPU): "*<argc>\r\n",
// then "$<length>\r\n<bytes>\r\n" per argument. Lengths first: binary-safe.
class RespEncoder {
 public:
  explicit RespEncoder(std::string& out) : out_(out) {}

  void hset(std::string_view prefix, std::string_view key, const StoredState& state) {
    out_.append("*8\r\n$4\r\nHSET\r\n");
    bulk(prefix, key);
    out_.append("$5\r\nstate\r\n");
    bulk(state.data);
    out_.append("$7\r\nversion\r\n");
    number_bulk(state.version);
    out_.append("$10\r\nupdated_ms\r\n");
    number_bulk(state.updated_ms);
  }
  void hgetall(std::string_view prefix, std::string_view key) {
    out_.append("*2\r\n$7\r\nHGETALL\r\n");
    bulk(prefix, key);
  }

 private:
  void bulk(std::string_view a, std::string_view b = {}) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, a.size() + b.size()).ptr;
    out_ += '$';
    out_.append(digits, end).append("\r\n").append(a).append(b).append("\r\n");
  }
  template <class Int>
  void number_bulk(Int v) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, v).ptr;
    bulk(std::string_view(digits, static_cast<std::size_t>(end - digits)));
  }

  std::string& out_;
};

// -- one connection and its share of the keys ---

struct Shard {
  explicit Shard(std::size_t i) : index(i) {}

  // -- constant after construction ---
  const std::size_t index;

  // -- guarded by mu ---
  // Invariants: done_gen <= taken_gen <= done_gen + 1; taken_left = states of
  // `taken` not acknowledged yet (0 when done_gen == taken_gen).
  mutable Mutex mu;
  CondVar work_cv;  // the writer waits: puts, loads, flush requests, stop
  CondVar done_cv;  // flush() waits: a generation written
  StateMap pending SWARM_GUARDED_BY(mu);
  StateMap taken;  // changed only by the writer, under mu; see the file comment
  std::size_t taken_left SWARM_GUARDED_BY(mu) = 0;
  std::uint64_t taken_gen SWARM_GUARDED_BY(mu) = 0;  // generations taken so far
  std::uint64_t done_gen SWARM_GUARDED_BY(mu) = 0;   // generations fully written
  std::deque<LoadRequest> loads SWARM_GUARDED_BY(mu);
  bool writer_idle SWARM_GUARDED_BY(mu) = false;  // waiting for work: put() must wake it
  int flush_waiters SWARM_GUARDED_BY(mu) = 0;
  bool stop SWARM_GUARDED_BY(mu) = false;
  bool connected SWARM_GUARDED_BY(mu) = false;
  bool refusing SWARM_GUARDED_BY(mu) = false;  // the server refused every command of the last round
  int fd SWARM_GUARDED_BY(mu) = -1;            // the connection's socket, shut down at close
  std::string last_error SWARM_GUARDED_BY(mu);
  std::uint64_t puts SWARM_GUARDED_BY(mu) = 0;
  std::uint64_t coalesced SWARM_GUARDED_BY(mu) = 0;
  std::uint64_t written SWARM_GUARDED_BY(mu) = 0;
  std::uint64_t batches SWARM_GUARDED_BY(mu) = 0;
  std::uint64_t write_errors SWARM_GUARDED_BY(mu) = 0;
  std::uint64_t reconnects SWARM_GUARDED_BY(mu) = 0;
  std::uint64_t set_aside SWARM_GUARDED_BY(mu) = 0;
  metrics::HistogramSnapshot flush_hist SWARM_GUARDED_BY(mu);

  // -- own synchronization ---
  std::thread writer;

  // Done when every generation taken is written and nothing waits to be taken.
  bool flushed_through(std::uint64_t target) const SWARM_REQUIRES(mu) {
    return done_gen >= target || (pending.empty() && done_gen == taken_gen);
  }
};

// What one round trip did.
struct RoundTrip {
  std::size_t written = 0;            // HSETs acknowledged
  std::vector<Entry*> refused;        // HSETs the server answered with an error
  std::vector<Entry*> unanswered;     // HSETs sent on a connection that was lost
  std::size_t loads_answered = 0;     // HGETALLs answered (a state, none, or not a state hash)
  std::size_t loads_refused = 0;      // HGETALLs the server refused for now (LOADING, BUSY, ...)
  std::vector<std::size_t> loads_waiting;  // indices of the loads to ask again, ascending
  std::size_t set_aside = 0;          // unreadable values moved out of their key's way
  std::string error;                  // the connection was lost, or the first refusal
  bool lost = false;

  bool refusals() const { return !refused.empty() || loads_refused > 0; }
  bool progress() const { return written > 0 || loads_answered > 0; }
};

// -- the store ---

class RedisStateStore final : public ObservableStateStore {
 public:
  RedisStateStore(RedisStateStoreOptions options, RedisUrl url) : options_(std::move(options)), url_(std::move(url)) {
    for (std::size_t i = 0; i < options_.connections; ++i) shards_.push_back(std::make_unique<Shard>(i));
    for (auto& s : shards_) s->writer = std::thread([this, shard = s.get()] { run(*shard); });
  }

  ~RedisStateStore() override {
    if (auto r = flush(options_.close_timeout); !r) std::fprintf(stderr, "%s; closing anyway\n", r.error().c_str());
    std::vector<std::pair<metrics::Registry*, std::uint64_t>> callbacks;
    {
      MutexLock lock(callbacks_mu_);
      callbacks.swap(callbacks_);
    }
    // Not under a shard's mutex: remove_callback waits for a running scrape, which takes them.
    for (auto [registry, id] : callbacks) registry->remove_callback(id);
    for (auto& s : shards_) {
      MutexLock lock(s->mu);
      s->stop = true;
      if (s->fd >= 0) ::shutdown(s->fd, SHUT_RDWR);  // a writer blocked in a round trip returns now
      s->work_cv.notify_all();
      s->done_cv.notify_all();
    }
    for (auto& s : shards_) s->writer.join();
    for (auto& s : shards_) {
      std::deque<LoadRequest> loads;
      {
        MutexLock lock(s->mu);
        loads.swap(s->loads);
      }
      for (auto& l : loads) answer(l.done, unexpected(std::string("storage: state store closed")));
    }
  }

  // -- hot path ---

  void put(std::string_view key, StoredState state) override {
    Shard& s = shard_of(key);
    bool wake = false;
    {
      MutexLock lock(s.mu);
      ++s.puts;
      if (auto it = s.pending.find(key); it != s.pending.end()) {
        it->second = std::move(state);
        ++s.coalesced;
      } else {
        s.pending.emplace(std::string(key), std::move(state));
        // An idle writer waits for the first state, then for a full batch (or max_delay).
        wake = s.writer_idle && (s.pending.size() == 1 || s.pending.size() == options_.max_batch);
      }
    }
    if (wake) s.work_cv.notify_one();
  }

  void load(std::string key, LoadCallback done) override {
    Shard& s = shard_of(key);
    LoadResult result = std::optional<StoredState>();
    {
      MutexLock lock(s.mu);
      if (s.stop) {
        result = unexpected(std::string("storage: state store closed"));
      } else if (auto it = s.pending.find(key); it != s.pending.end()) {
        result = std::optional<StoredState>(it->second);
      } else if (auto t = s.taken.find(key); t != s.taken.end()) {
        result = std::optional<StoredState>(t->second);  // being written, maybe written: the newest either way
      } else {
        // Only the server knows: HGETALL on the key's connection, after the writes queued there.
        s.loads.push_back({std::move(key), std::move(done)});
        if (s.writer_idle) s.work_cv.notify_one();
        return;
      }
    }
    answer(done, std::move(result));  // not under the mutex: the callback may put()
  }

  // -- control ---

  Result<void> flush(milliseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    bool timed_out = false;
    for (auto& sp : shards_) {
      Shard& s = *sp;
      MutexLock lock(s.mu);
      // Everything put so far is in `taken` (generation taken_gen) or in `pending` (the next one).
      const std::uint64_t target = s.pending.empty() ? s.taken_gen : s.taken_gen + 1;
      if (s.flushed_through(target)) continue;
      ++s.flush_waiters;
      s.work_cv.notify_one();  // write a partial batch now
      const bool done =
          s.done_cv.wait_until(s.mu, deadline, [&]() SWARM_REQUIRES(s.mu) { return s.flushed_through(target); });
      --s.flush_waiters;
      if (!done) {
        timed_out = true;
        break;
      }
    }
    if (!timed_out) return {};
    std::string why;
    for (auto& s : shards_) {
      MutexLock lock(s->mu);
      if (why.empty()) why = s->last_error;
    }
    return unexpected("storage: state store flush timed out after " + std::to_string(timeout.count()) + " ms: " +
                      std::to_string(stats().pending) + " keys still pending" +
                      (why.empty() ? std::string() : " (last error: " + why + ")"));
  }

  void on_written_state_lost(std::function<void()> rewrite) override {
    MutexLock lock(server_mu_);
    rewrite_ = std::move(rewrite);
  }

  Result<void> ready() const override {
    for (const auto& s : shards_) {
      MutexLock lock(s->mu);
      if (s->connected && !s->refusing) continue;
      return unexpected("storage: state store not ready: " +
                        (s->last_error.empty() ? "not connected to Redis at " + url_.endpoint() + " yet"
                                               : s->last_error));
    }
    return {};
  }

  StateStoreStats stats() const override {
    StateStoreStats out;
    out.connected = true;
    for (const auto& s : shards_) {
      MutexLock lock(s->mu);
      out.puts += s->puts;
      out.coalesced += s->coalesced;
      out.written += s->written;
      out.batches += s->batches;
      out.write_errors += s->write_errors;
      out.reconnects += s->reconnects;
      out.unreadable += s->set_aside;
      out.pending += s->pending.size() + s->taken_left;
      out.connected = out.connected && s->connected;
    }
    MutexLock lock(server_mu_);
    out.server_restarts = server_restarts_;
    return out;
  }

  void collect(metrics::Collector& c) const override {
    const StateStoreStats s = stats();
    metrics::HistogramSnapshot flush;
    for (const auto& shard : shards_) {
      MutexLock lock(shard->mu);
      flush.merge(shard->flush_hist);
    }
    const metrics::Labels labels = {{"backend", "redis"}};
    c.gauge("swarm_state_pending_keys", "Keys whose newest state is not written yet.", labels,
            static_cast<double>(s.pending));
    c.counter("swarm_state_puts_total", "States put into the state store.", labels, static_cast<double>(s.puts));
    c.counter("swarm_state_written_total", "States written to the state store's backend.", labels,
              static_cast<double>(s.written));
    c.counter("swarm_state_coalesced_total", "Queued states replaced by a newer state of their key.", labels,
              static_cast<double>(s.coalesced));
    c.counter("swarm_state_write_errors_total", "Failed state writes.", labels, static_cast<double>(s.write_errors));
    c.counter("swarm_state_reconnects_total", "State store connections reopened after a loss.", labels,
              static_cast<double>(s.reconnects));
    c.counter("swarm_state_unreadable_total",
              "Stored values that were not state hashes (another type, missing fields), kept under "
              "<key>.unreadable.<ms> so their agents start fresh.",
              labels, static_cast<double>(s.unreadable));
    c.counter("swarm_state_server_restarts_total",
              "Times the state store's server came back as a new process (its run_id changed): what it acknowledged "
              "before may be lost, so live states are written again.",
              labels, static_cast<double>(s.server_restarts));
    c.gauge("swarm_state_connected", "1 when every state store connection works.", labels, s.connected ? 1 : 0);
    c.histogram("swarm_state_flush_seconds", "Time of one state store write round trip.", labels, flush);
  }

  void export_metrics(metrics::Registry& registry) override {
    const auto id = registry.add_callback([this](metrics::Collector& c) { collect(c); });
    MutexLock lock(callbacks_mu_);
    callbacks_.emplace_back(&registry, id);
  }

 private:
  Shard& shard_of(std::string_view key) {
    return *shards_[shards_.size() == 1 ? 0 : std::hash<std::string_view>{}(key) % shards_.size()];
  }

  // Runs a load callback; one that throws must not take the writer down.
  static void answer(const LoadCallback& done, LoadResult result) {
    try {
      done(std::move(result));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "storage: a state load callback threw: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "storage: a state load callback threw\n");
    }
  }

  std::string redis_key(std::string_view key) const { return options_.key_prefix + std::string(key); }

  // -- writer thread ---

  // Opens and prepares a connection (AUTH, SELECT); on failure says why in
  // `error`. `run_id` is the server's (INFO server), empty when it will not say.
  Connection connect(std::string& error, std::string& run_id) const {
    const std::string where = "Redis at " + url_.endpoint();
    Connection c(redisConnectWithTimeout(url_.host.c_str(), url_.port, to_timeval(options_.connect_timeout)));
    if (!c) {
      error = "cannot connect to " + where + ": out of memory";
      return nullptr;
    }
    if (c->err != 0) {
      error = "cannot connect to " + where + ": " + c->errstr;
      return nullptr;
    }
    const timeval command = to_timeval(options_.command_timeout);
    if (redisSetTimeout(c.get(), command) != REDIS_OK || redisEnableKeepAlive(c.get()) != REDIS_OK) {
      error = "cannot set up the connection to " + where + ": " + c->errstr;
      return nullptr;
    }
    const auto command_ok = [&](std::vector<std::string> args, const char* what) {
      std::vector<const char*> argv;
      std::vector<std::size_t> lens;
      for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      Reply r(static_cast<redisReply*>(
          redisCommandArgv(c.get(), static_cast<int>(argv.size()), argv.data(), lens.data())));
      if (!r) {
        error = std::string("lost the connection to ") + where + " during " + what + ": " + c->errstr;
        return false;
      }
      if (r->type == REDIS_REPLY_ERROR) {
        error = where + " refused " + what + ": " + std::string(reply_text(r.get()));
        return false;
      }
      return true;
    };
    if (!url_.password.empty()) {
      std::vector<std::string> auth = {"AUTH"};
      if (!url_.user.empty()) auth.push_back(url_.user);
      auth.push_back(url_.password);
      if (!command_ok(std::move(auth), "AUTH")) return nullptr;
    }
    if (url_.db != 0 && !command_ok({"SELECT", std::to_string(url_.db)}, "SELECT")) return nullptr;
    run_id.clear();
    Reply info(static_cast<redisReply*>(redisCommand(c.get(), "INFO server")));
    if (!info) {
      error = "lost the connection to " + where + " during INFO: " + c->errstr;
      return nullptr;
    }
    if (info->type == REDIS_REPLY_STRING) {  // else refused (INFO renamed away): no detection
      const std::string_view text = reply_text(info.get());
      if (auto at = text.find("run_id:"); at != std::string_view::npos) {
        const auto begin = at + 7;
        run_id = std::string(text.substr(begin, text.find_first_of("\r\n", begin) - begin));
      }
    }
    return c;
  }

  // Appends `chunk` (HSETs), then `loads` (HGETALLs), with hiredis formatting each command (the plain version).
  void append_each(redisContext* c, const std::vector<Entry*>& chunk, const std::vector<LoadRequest>& loads) const {
    std::string key;
    for (const Entry* e : chunk) {
      key.assign(options_.key_prefix).append(e->first);
      char version[24], updated[24];
      const auto v_end = std::to_chars(version, version + sizeof version, e->second.version).ptr;
      const auto u_end = std::to_chars(updated, updated + sizeof updated, e->second.updated_ms).ptr;
      const char* argv[8] = {"HSET", key.data(), "state", e->second.data.data(), "version", version,
                             "updated_ms", updated};
      const std::size_t lens[8] = {4,
                                   key.size(),
                                   5,
                                   e->second.data.size(),
                                   7,
                                   static_cast<std::size_t>(v_end - version),
                                   10,
                                   static_cast<std::size_t>(u_end - updated)};
      redisAppendCommandArgv(c, 8, argv, lens);
    }
    for (const LoadRequest& l : loads) {
      key.assign(options_.key_prefix).append(l.key);
      const char* argv[2] = {"HGETALL", key.data()};
      const std::size_t lens[2] = {7, key.size()};
      redisAppendCommandArgv(c, 2, argv, lens);
    }
  }

  // Sends `chunk` (HSETs), then `loads` (HGETALLs), in one pipeline and reads every reply.
  // `scratch` is the writer's reusable encoding buffer.
  RoundTrip round_trip(redisContext* c, const std::vector<Entry*>& chunk, const std::vector<LoadRequest>& loads,
                       std::vector<std::pair<LoadCallback*, LoadResult>>& answers, std::string& scratch) {
    RoundTrip rt;
    if (options_.encode_batches) {
      scratch.clear();
      RespEncoder resp(scratch);
      for (const Entry* e : chunk) resp.hset(options_.key_prefix, e->first, e->second);
      for (const LoadRequest& l : loads) resp.hgetall(options_.key_prefix, l.key);
      if (!scratch.empty()) redisAppendFormattedCommand(c, scratch.data(), scratch.size());
    } else {
      append_each(c, chunk, loads);
    }
    if (chunk.empty() && loads.empty()) redisAppendCommand(c, "PING");  // heartbeat

    const std::size_t total = std::max<std::size_t>(chunk.size() + loads.size(), 1);
    std::vector<std::pair<std::size_t, std::string>> unreadable;  // loads of values that are not state hashes
    std::unordered_set<Entry*> wrong_type;                        // writes refused with WRONGTYPE
    for (std::size_t i = 0; i < total; ++i) {
      void* raw = nullptr;
      if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) {
        rt.lost = true;
        rt.error = "lost the connection to Redis at " + url_.endpoint() + ": " + c->errstr;
        for (std::size_t k = i; k < chunk.size(); ++k) rt.unanswered.push_back(chunk[k]);
        for (std::size_t k = std::max(i, chunk.size()); k < chunk.size() + loads.size(); ++k) {
          rt.loads_waiting.push_back(k - chunk.size());
        }
        discard_pending_sigpipe();
        break;  // loads of unreadable values read before the loss wait too (below)
      }
      Reply r(static_cast<redisReply*>(raw));
      if (i < chunk.size()) {
        if (r->type == REDIS_REPLY_ERROR) {
          if (reply_text(r.get()).substr(0, 9) == "WRONGTYPE") wrong_type.insert(chunk[i]);
          if (!rt.refusals()) {
            rt.error = "Redis at " + url_.endpoint() + " refused a write of '" + options_.key_prefix +
                       chunk[i]->first + "': " + std::string(reply_text(r.get()));
          }
          rt.refused.push_back(chunk[i]);
        } else {
          ++rt.written;
        }
      } else if (i - chunk.size() < loads.size()) {
        const LoadRequest& l = loads[i - chunk.size()];
        const std::string_view text = r->type == REDIS_REPLY_ERROR ? reply_text(r.get()) : std::string_view();
        if (r->type == REDIS_REPLY_ERROR && text.substr(0, 9) != "WRONGTYPE") {
          // Not about the key (LOADING after a restart, BUSY, NOAUTH...): the load waits, as for a server that is down.
          if (!rt.refusals()) {
            rt.error = "Redis at " + url_.endpoint() + " refused a read of '" + redis_key(l.key) + "': " +
                       std::string(text);
          }
          ++rt.loads_refused;
          rt.loads_waiting.push_back(i - chunk.size());
          continue;
        }
        LoadResult state = parse_state(r.get());
        if (!state) {  // not a state hash: moved aside below, and the agent starts fresh
          unreadable.emplace_back(i - chunk.size(), std::move(state.error()));
          continue;
        }
        answers.emplace_back(const_cast<LoadCallback*>(&l.done), std::move(state));
        ++rt.loads_answered;
      }
    }
    for (auto& [index, why] : unreadable) {
      const LoadRequest& l = loads[index];
      if (rt.lost || !set_aside(c, l.key, why, rt)) {
        rt.loads_waiting.push_back(index);
        continue;
      }
      answers.emplace_back(const_cast<LoadCallback*>(&l.done), std::optional<StoredState>());
      ++rt.loads_answered;
    }
    std::sort(rt.loads_waiting.begin(), rt.loads_waiting.end());
    // A write refused because the key holds another type: move that value aside, the retry then succeeds.
    for (Entry* e : rt.refused) {
      if (rt.lost) break;
      if (wrong_type.count(e) != 0) set_aside(c, e->first, "it holds another type than a hash (WRONGTYPE)", rt);
    }
    return rt;
  }

  // Renames the unreadable value of `key` to `<key>.unreadable.<unix ms>`, so
  // a persistent agent starts from a fresh state and nothing is deleted. False
  // when the connection was lost (then `rt` says so).
  bool set_aside(redisContext* c, const std::string& key, const std::string& why, RoundTrip& rt) {
    const std::string from = redis_key(key);
    const std::string to = from + ".unreadable." +
                           std::to_string(std::chrono::duration_cast<milliseconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
    const char* argv[3] = {"RENAME", from.data(), to.data()};
    const std::size_t lens[3] = {6, from.size(), to.size()};
    Reply r(static_cast<redisReply*>(redisCommandArgv(c, 3, argv, lens)));
    if (!r) {
      rt.lost = true;
      rt.error = "lost the connection to Redis at " + url_.endpoint() + ": " + c->errstr;
      discard_pending_sigpipe();
      return false;
    }
    if (r->type == REDIS_REPLY_ERROR) {  // "no such key": gone meanwhile, nothing to move
      std::fprintf(stderr, "storage: the state of '%s' cannot be read (%s); moving it aside failed: %s\n",
                   from.c_str(), why.c_str(), std::string(reply_text(r.get())).c_str());
      return true;
    }
    ++rt.set_aside;
    std::fprintf(stderr, "storage: the state of '%s' cannot be read (%s); kept as '%s', the agent starts fresh\n",
                 from.c_str(), why.c_str(), to.c_str());
    return true;
  }

  void run(Shard& s) {
    block_sigpipe();
    Connection conn;
    bool ever_connected = false;
    bool generation = false;          // `taken` holds a generation not fully written
    StateMap::iterator cursor;        // the next state of `taken` to send
    std::vector<Entry*> retry;        // states of `taken` whose write failed: sent first
    std::vector<Entry*> chunk;
    std::vector<LoadRequest> loads;
    std::vector<std::pair<LoadCallback*, LoadResult>> answers;
    std::string scratch;  // RESP of one round trip (encode_batches)
    milliseconds backoff = options_.backoff_initial;
    auto next_attempt = Clock::now();  // no connection, or a refusing server: not before this
    auto last_io = Clock::now();
    bool busy = false;  // the last round trip wrote states: what queued meanwhile goes at once
    bool refusal_logged = false;
    bool down = false;  // one log line each way
    Clock::time_point down_since;
    const std::string who = shards_.size() > 1 ? " (connection " + std::to_string(s.index + 1) + " of " +
                                                     std::to_string(shards_.size()) + ")"
                                               : std::string();

    // Records a failure and schedules the next attempt after a backoff.
    enum class Failure { cannot_connect, lost, refused };
    const auto failed = [&](const std::string& error, Failure kind) {
      if (kind == Failure::lost) {
        {
          MutexLock lock(s.mu);
          s.fd = -1;  // before the socket closes, so close() cannot shut down a reused descriptor
        }
        conn.reset();
      }
      next_attempt = Clock::now() + backoff;
      backoff = std::min(backoff * 2, options_.backoff_max);
      std::size_t pending = 0;
      {
        MutexLock lock(s.mu);
        s.last_error = error;
        s.connected = kind == Failure::refused;
        s.refusing = kind == Failure::refused;
        pending = s.pending.size() + s.taken_left;
      }
      if (!down) {
        down = true;
        down_since = Clock::now();
        std::fprintf(stderr, "storage: state store cannot write%s: %s; retrying with backoff (%zu keys pending)\n",
                     who.c_str(), error.c_str(), pending);
      }
    };

    for (;;) {
      // -- connect, or back off ---
      if (!conn || next_attempt > Clock::now()) {
        MutexLock lock(s.mu);
        s.work_cv.wait_until(s.mu, next_attempt, [&]() SWARM_REQUIRES(s.mu) { return s.stop; });
        if (s.stop) return;
      }
      if (!conn) {
        std::string error, run_id;
        conn = connect(error, run_id);
        if (!conn) {
          failed(error, Failure::cannot_connect);
          continue;
        }
        note_server(run_id);
        MutexLock lock(s.mu);
        if (s.stop) return;
        s.fd = conn->fd;
        s.connected = true;
        if (ever_connected) ++s.reconnects;
        ever_connected = true;
        last_io = Clock::now();
      }

      // -- wait for work, take it ---
      loads.clear();
      {
        MutexLock lock(s.mu);
        if (!generation && s.pending.empty() && s.loads.empty()) {
          s.writer_idle = true;
          s.work_cv.wait_until(s.mu, last_io + kHeartbeat, [&]() SWARM_REQUIRES(s.mu) {
            return s.stop || !s.pending.empty() || !s.loads.empty();
          });
          s.writer_idle = false;
        }
        if (!busy && !generation && !s.pending.empty() && s.pending.size() < options_.max_batch &&
            s.flush_waiters == 0 && s.loads.empty()) {
          // Nothing was in flight: a partial batch waits up to max_delay to fill.
          s.writer_idle = true;
          s.work_cv.wait_until(s.mu, Clock::now() + options_.max_delay, [&]() SWARM_REQUIRES(s.mu) {
            return s.stop || s.flush_waiters > 0 || s.pending.size() >= options_.max_batch || !s.loads.empty();
          });
          s.writer_idle = false;
        }
        if (s.stop) return;
        if (!generation && !s.pending.empty()) {
          s.taken.swap(s.pending);  // O(1): put() never waits for a batch to be copied
          s.taken_left = s.taken.size();
          ++s.taken_gen;
          cursor = s.taken.begin();
          generation = true;
        }
        // A state about to be retried gives way to a newer one of its key.
        for (Entry* e : retry) {
          if (auto it = s.pending.find(e->first); it != s.pending.end()) {
            e->second = std::move(it->second);
            s.pending.erase(it);
            ++s.coalesced;
          }
        }
        while (!s.loads.empty() && loads.size() < options_.max_batch) {
          loads.push_back(std::move(s.loads.front()));
          s.loads.pop_front();
        }
      }

      chunk.clear();
      while (!retry.empty() && chunk.size() < options_.max_batch) {
        chunk.push_back(retry.back());
        retry.pop_back();
      }
      while (generation && cursor != s.taken.end() && chunk.size() < options_.max_batch) {
        chunk.push_back(&*cursor);
        ++cursor;
      }

      // -- one round trip ---
      answers.clear();
      const auto start = Clock::now();
      RoundTrip rt = round_trip(conn.get(), chunk, loads, answers, scratch);
      last_io = Clock::now();
      busy = rt.written > 0;
      if (scratch.capacity() > (std::size_t{8} << 20)) std::string().swap(scratch);  // after a batch of huge states
      retry.insert(retry.end(), rt.refused.begin(), rt.refused.end());
      retry.insert(retry.end(), rt.unanswered.begin(), rt.unanswered.end());

      StateMap done;  // a finished generation, freed outside the mutex
      {
        MutexLock lock(s.mu);
        s.written += rt.written;
        s.taken_left -= rt.written;
        if (rt.written > 0) {
          ++s.batches;
          observe(s.flush_hist, last_io - start);
        }
        s.write_errors += rt.refused.size() + (rt.lost && !chunk.empty() ? 1 : 0);
        s.set_aside += rt.set_aside;
        // Loads not answered wait for the next round trip, first in line.
        for (auto i = rt.loads_waiting.rbegin(); i != rt.loads_waiting.rend(); ++i) {
          s.loads.push_front(std::move(loads[*i]));
        }
        if (generation && retry.empty() && cursor == s.taken.end()) {
          done.swap(s.taken);
          s.taken_left = 0;
          s.done_gen = s.taken_gen;
          generation = false;
          s.done_cv.notify_all();
        }
        if (!rt.lost && (!rt.refusals() || rt.progress())) {
          s.connected = true;
          s.refusing = false;
          s.last_error.clear();
        }
      }
      for (auto& [callback, result] : answers) answer(*callback, std::move(result));
      done.clear();

      if (rt.lost || (rt.refusals() && !rt.progress())) {
        // Lost: reconnect after a backoff. Refused with no progress: the server
        // refuses everything for now (loading, out of memory, read-only): try again after a backoff.
        failed(rt.error, rt.lost ? Failure::lost : Failure::refused);
        continue;
      }
      if (rt.refusals() && !refusal_logged) {  // some keys refused, others fine: say so once per episode
        std::fprintf(stderr, "storage: state store%s: %s (%zu commands refused; retrying)\n", who.c_str(),
                     rt.error.c_str(), rt.refused.size() + rt.loads_refused);
      }
      refusal_logged = rt.refusals();
      backoff = options_.backoff_initial;
      if (down) {
        down = false;
        std::fprintf(stderr, "storage: state store writes to Redis again%s after %.1f s\n", who.c_str(),
                     std::chrono::duration<double>(last_io - down_since).count());
      }
    }
  }

  // A connection reached a server whose run id is `run_id`. Another id than
  // the last one seen means the server restarted, so what it acknowledged may
  // be gone (no persistence, or the last fsync interval): the owner writes
  // every live state again.
  void note_server(const std::string& run_id) {
    if (run_id.empty()) return;
    std::function<void()> rewrite;
    {
      MutexLock lock(server_mu_);
      if (run_id == server_run_id_) return;
      const bool restarted = !server_run_id_.empty();
      server_run_id_ = run_id;
      if (!restarted) return;
      ++server_restarts_;
      rewrite = rewrite_;
    }
    std::fprintf(stderr, "storage: Redis at %s restarted (its run_id changed): states it acknowledged may be lost; %s\n",
                 url_.endpoint().c_str(),
                 rewrite ? "every live persistent agent writes its state again" : "nothing to write them again");
    if (rewrite) rewrite();
  }

  // -- constant after construction ---
  const RedisStateStoreOptions options_;
  const RedisUrl url_;
  std::vector<std::unique_ptr<Shard>> shards_;  // the vector is constant; each Shard synchronizes itself

  mutable Mutex server_mu_;
  std::string server_run_id_ SWARM_GUARDED_BY(server_mu_);
  std::uint64_t server_restarts_ SWARM_GUARDED_BY(server_mu_) = 0;
  std::function<void()> rewrite_ SWARM_GUARDED_BY(server_mu_);

  // -- guarded by callbacks_mu_ ---
  Mutex callbacks_mu_;
  std::vector<std::pair<metrics::Registry*, std::uint64_t>> callbacks_ SWARM_GUARDED_BY(callbacks_mu_);
};

}  // namespace

Result<std::unique_ptr<ObservableStateStore>> make_redis_state_store(RedisStateStoreOptions options) {
  auto url = parse_redis_url(options.url);
  if (!url) return unexpected(url.error());
  const auto bad = [](const char* what) {
    return unexpected(std::string("storage: invalid state store options: ") + what);
  };
  if (options.connections == 0 || options.connections > 64) return bad("connections must be 1-64");
  if (options.max_batch == 0) return bad("max_batch must be positive");
  if (options.backoff_initial.count() <= 0 || options.backoff_max < options.backoff_initial) {
    return bad("backoff_initial must be positive and at most backoff_max");
  }
  if (options.connect_timeout.count() <= 0 || options.command_timeout.count() <= 0) {
    return bad("connect_timeout and command_timeout must be positive");
  }
  if (options.max_delay.count() < 0 || options.close_timeout.count() < 0) return bad("timeouts must not be negative");
  return std::unique_ptr<ObservableStateStore>(std::make_unique<RedisStateStore>(std::move(options), std::move(*url)));
}

}  // namespace swarm::storage

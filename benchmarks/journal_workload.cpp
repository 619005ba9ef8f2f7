// S2, the journal workload (see workloads.hpp): `scale` events with a 64-byte
// payload into Postgres, through Swarm's journal or through raw COPY batches.
//
// Both sides write the same rows into the same table (the journal's schema,
// migrated first, emptied by TRUNCATE) and do the same client-side work per
// row: build the event, hex-encode its payload, format its timestamp. Row i
// of either run: agent i % 10,000, type "worker", kind "message" (every
// 100th "crashed", so the partial crash indexes see some inserts), detail
// "bench.s2", at = start + i µs, payload 64 bytes that vary with i. Ids come
// from storage::next_event_id() on both sides, so the primary key sees the
// same insertion pattern.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/stream_to>
#include <pqxx/transaction>

#include "benchmarks/workloads.hpp"
#include "storage/journal.hpp"

namespace swarm::bench {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kStandardEvents = 1'000'000;
constexpr std::size_t kPayloadBytes = 64;
constexpr std::size_t kRawBatch = 10'000;
constexpr std::uint64_t kAgents = 10'000;
constexpr const char* kDetail = "bench.s2";
constexpr const char* kType = "worker";

std::uint64_t event_count(const WorkloadParams& p) { return p.scale != 0 ? p.scale : kStandardEvents; }

storage::EventKind kind_of(std::uint64_t i) {
  return i % 100 == 0 ? storage::EventKind::crashed : storage::EventKind::message;
}

// 64 bytes: the row number, then a fixed pattern (every byte value appears across rows).
void fill_payload(std::string& out, std::uint64_t i) {
  out.resize(kPayloadBytes);
  for (std::size_t k = 0; k < 8; ++k) out[k] = static_cast<char>(i >> (8 * k));
  for (std::size_t k = 8; k < kPayloadBytes; ++k) out[k] = static_cast<char>((i + k * 37) & 0xFF);
}

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("S2: " + what); }

// DSN present, server reachable, schema migrated, table empty.
void prepare_table(const WorkloadParams& p) {
  if (p.postgres_dsn.empty()) fail("needs a Postgres DSN (swarm-bench S2 --postgres DSN)");
  if (auto valid = storage::validate_postgres_dsn(p.postgres_dsn); !valid) fail(valid.error());
  if (auto migrated = storage::migrate_postgres_journal(p.postgres_dsn); !migrated) {
    fail("cannot prepare the journal table: " + migrated.error());
  }
  try {
    pqxx::connection c(p.postgres_dsn);
    pqxx::nontransaction tx(c);
    tx.exec("TRUNCATE swarm_journal");
  } catch (const std::exception& e) {
    fail(std::string("cannot empty swarm_journal: ") + e.what());
  }
}

std::uint64_t count_rows(const std::string& dsn) {
  try {
    pqxx::connection c(dsn);
    pqxx::nontransaction tx(c);
    return tx.exec("SELECT count(*) FROM swarm_journal")[0][0].as<std::uint64_t>();
  } catch (const std::exception& e) {
    fail(std::string("cannot count the rows written: ") + e.what());
  }
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// p95 of history(agent) over kHistoryQueries random agents, in ms: what a
// user browsing the journal waits, on the table the run just wrote.
constexpr int kHistoryQueries = 1000;
double history_p95_ms(storage::Journal& journal) {
  std::mt19937_64 rng(42);
  std::vector<double> ms;
  ms.reserve(kHistoryQueries);
  for (int q = 0; q < kHistoryQueries; ++q) {
    const std::uint64_t agent = rng() % kAgents;
    const auto start = Clock::now();
    auto h = journal.history(agent);
    ms.push_back(seconds_since(start) * 1e3);
    if (!h) fail("history query failed: " + h.error());
    if (h->empty()) fail("history of agent " + std::to_string(agent) + " is empty");
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() * 95 / 100];
}

// -- raw COPY: what a careful hand-written writer does per row ---

std::string hex_bytea(const std::string& bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\\x";
  out.reserve(2 + 2 * bytes.size());
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

// timestamptz text for µs since the epoch (after 1970); the date and time of
// day are formatted once per second, only the microseconds per row.
class TimestampText {
 public:
  const std::string& operator()(std::int64_t at_us) {
    const std::int64_t sec = at_us / 1'000'000;
    if (sec != sec_ || text_.empty()) {
      sec_ = sec;
      const std::time_t t = static_cast<std::time_t>(sec);
      std::tm tm{};
      gmtime_r(&t, &tm);
      char buf[32];
      std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S.", &tm);
      text_ = buf;
      prefix_ = text_.size();
      text_ += "000000+00";
    }
    std::int64_t us = at_us % 1'000'000;
    for (std::size_t k = prefix_ + 6; k-- > prefix_;) {
      text_[k] = static_cast<char>('0' + us % 10);
      us /= 10;
    }
    return text_;
  }

 private:
  std::int64_t sec_ = -1;
  std::size_t prefix_ = 0;
  std::string text_;
};

}  // namespace

RunResult swarm_s2(const WorkloadParams& p) {
  prepare_table(p);
  const std::uint64_t n = event_count(p);
  storage::PostgresJournalOptions options{.dsn = p.postgres_dsn};
  if (p.batch != 0) options.max_batch = p.batch;
  if (p.max_delay_ms > 0) options.max_delay = std::chrono::milliseconds(p.max_delay_ms);
  options.direct_copy = !p.staged;
  options.max_queue = std::max<std::size_t>(options.max_queue, n);  // a figure with drops would mean nothing
  auto made = storage::make_postgres_journal(options);
  if (!made) fail(made.error());
  std::unique_ptr<storage::Journal> journal = std::move(*made);
  // Connected (and migrated) before the clock starts, as the raw side is.
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!journal->ready()) {
    if (Clock::now() > deadline) fail(journal->ready().error());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }

  const std::int64_t base_us = storage::now_us();
  const auto start = Clock::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    storage::JournalEvent e{.kind = kind_of(i),
                            .agent = i % kAgents,
                            .agent_type = kType,
                            .at_us = base_us + static_cast<std::int64_t>(i),
                            .detail = kDetail};
    fill_payload(e.payload, i);
    journal->append(std::move(e));
  }
  if (auto flushed = journal->flush(std::chrono::minutes(10)); !flushed) fail(flushed.error());
  const double seconds = seconds_since(start);
  const storage::JournalStats stats = journal->stats();
  if (stats.dropped != 0) fail("the journal dropped " + std::to_string(stats.dropped) + " events");
  const double p95 = history_p95_ms(*journal);
  journal.reset();
  return RunResult{.value = static_cast<double>(n) / seconds,
                   .seconds = seconds,
                   .checksum = count_rows(p.postgres_dsn),
                   .history_p95_ms = p95};
}

RunResult raw_s2(const WorkloadParams& p) {
  prepare_table(p);
  const std::uint64_t n = event_count(p);
  const std::size_t batch = p.batch != 0 ? p.batch : kRawBatch;
  const std::vector<std::string> columns = {"event_id", "kind", "agent", "agent_type", "at", "detail", "payload"};
  std::unique_ptr<pqxx::connection> c;
  try {
    c = std::make_unique<pqxx::connection>(p.postgres_dsn);
  } catch (const std::exception& e) {
    fail(std::string("cannot connect to Postgres: ") + e.what());
  }

  const std::int64_t base_us = storage::now_us();
  TimestampText at_text;
  std::string payload;
  const auto start = Clock::now();
  try {
    for (std::uint64_t first = 0; first < n; first += batch) {
      const std::uint64_t end = std::min<std::uint64_t>(n, first + batch);
      pqxx::work tx(*c);
      pqxx::stream_to copy(tx, "swarm_journal", columns);
      for (std::uint64_t i = first; i < end; ++i) {
        fill_payload(payload, i);
        copy << std::make_tuple(static_cast<std::int64_t>(storage::next_event_id()),
                                std::string(storage::to_string(kind_of(i))), static_cast<std::int64_t>(i % kAgents),
                                std::string(kType), at_text(base_us + static_cast<std::int64_t>(i)),
                                std::string(kDetail), hex_bytea(payload));
      }
      copy.complete();
      tx.commit();
    }
  } catch (const std::exception& e) {
    fail(std::string("raw COPY failed: ") + e.what());
  }
  const double seconds = seconds_since(start);
  c.reset();
  return RunResult{.value = static_cast<double>(n) / seconds,
                   .seconds = seconds,
                   .checksum = count_rows(p.postgres_dsn)};
}

}  // namespace swarm::bench

#include "metrics/profiler.hpp"

#include <cxxabi.h>
#include <dirent.h>
#include <dlfcn.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace swarm::metrics {
namespace {

using namespace std::chrono_literals;

constexpr int kMaxDepth = 128;
constexpr std::size_t kRingCells = 4096;             // power of two; drained every kDrainPeriod
constexpr std::uintptr_t kMaxFrameBytes = 1u << 20;  // a bigger gap between frame records is not a frame
constexpr auto kDrainPeriod = 10ms;
constexpr auto kRescanPeriod = 100ms;

// -- the sample ring ---
// Dmitry Vyukov's bounded queue with a single consumer. Writers: SIGPROF
// handlers on any thread. A writer claims cell `pos` by a CAS on head_ when
// the cell's seq == pos, fills it, and publishes it with seq = pos + 1
// (release). Reader: the profiling thread only; it takes cell tail_ once
// seq == tail_ + 1 (acquire) and frees it with seq = tail_ + kRingCells
// (release). A writer never waits: if its cell is still full, the sample is
// counted in dropped_ and lost. A writer stalled between claim and publish
// only delays the reader. No allocation after construction.
class SampleRing {
 public:
  explicit SampleRing(int depth)
      : depth_(depth),
        cells_(new Cell[kRingCells]),
        pcs_(new std::uintptr_t[kRingCells * static_cast<std::size_t>(depth)]) {
    for (std::size_t i = 0; i < kRingCells; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
  }

  // Async-signal-safe. REQUIRES: 0 < n <= depth.
  void push(pid_t tid, const std::uintptr_t* pcs, int n) noexcept {
    std::uint64_t pos = head_.load(std::memory_order_relaxed);
    Cell* cell;
    for (;;) {
      cell = &cells_[pos & (kRingCells - 1)];
      auto lag = static_cast<std::int64_t>(cell->seq.load(std::memory_order_acquire) - pos);
      if (lag == 0) {
        if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
      } else if (lag < 0) {
        dropped_.fetch_add(1, std::memory_order_relaxed);  // the reader is a whole ring behind
        return;
      } else {
        pos = head_.load(std::memory_order_relaxed);  // another writer took it
      }
    }
    cell->tid = tid;
    cell->depth = n;
    std::uintptr_t* out = &pcs_[(pos & (kRingCells - 1)) * static_cast<std::size_t>(depth_)];
    for (int i = 0; i < n; ++i) out[i] = pcs[i];
    cell->seq.store(pos + 1, std::memory_order_release);
  }

  // Profiling thread only. Calls f(tid, pcs) for each published sample, in order.
  template <class F>
  void drain(F&& f) {
    for (;;) {
      Cell& cell = cells_[tail_ & (kRingCells - 1)];
      if (cell.seq.load(std::memory_order_acquire) != tail_ + 1) return;
      const std::uintptr_t* pcs = &pcs_[(tail_ & (kRingCells - 1)) * static_cast<std::size_t>(depth_)];
      f(cell.tid, std::span<const std::uintptr_t>(pcs, static_cast<std::size_t>(cell.depth)));
      cell.seq.store(tail_ + kRingCells, std::memory_order_release);
      ++tail_;
    }
  }

  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  struct Cell {
    std::atomic<std::uint64_t> seq{0};
    pid_t tid = 0;  // written by the claiming writer before seq is published
    int depth = 0;
  };

  // constant after construction
  const int depth_;
  const std::unique_ptr<Cell[]> cells_;
  const std::unique_ptr<std::uintptr_t[]> pcs_;  // depth_ slots per cell
  // own synchronization
  std::atomic<std::uint64_t> head_{0};
  std::atomic<std::uint64_t> dropped_{0};
  // profiling thread only
  std::uint64_t tail_ = 0;
};

// -- state shared with the signal handler ---
// Written by the profiling thread before g_collecting becomes true, and left
// alone until g_collecting is false and g_in_handler is back to 0: a handler
// counts itself in g_in_handler before it reads g_collecting (both seq_cst),
// so stop_sampling() either sees it running or it sees collecting == false.
SampleRing* g_ring = nullptr;
int g_max_depth = 0;
pid_t g_pid = 0;
int g_pipe[2] = {-1, -1};  // valid in pipe mode only
bool g_use_pipe = false;
std::atomic<bool> g_collecting{false};
std::atomic<int> g_in_handler{0};
// Outside the handler:
std::atomic<bool> g_busy{false};           // a profile_cpu() call owns all of the above
std::atomic<bool> g_pipe_for_test{false};  // use_pipe_reader_for_test()

// write() copies from `addr` inside the kernel, which reports EFAULT instead
// of faulting; once the 16 bytes proved readable, read them directly.
__attribute__((no_sanitize("address"))) bool read_frame_via_pipe(std::uintptr_t addr, std::uintptr_t out[2]) noexcept {
  if (write(g_pipe[1], reinterpret_cast<const void*>(addr), 16) != 16) return false;
  char sink[16];  // keep the pipe empty; whose 16 bytes these are does not matter
  if (read(g_pipe[0], sink, sizeof sink) < 0) return false;
  const volatile std::uintptr_t* p = reinterpret_cast<const volatile std::uintptr_t*>(addr);
  out[0] = p[0];
  out[1] = p[1];
  return true;
}

// Reads the frame record {saved rbp, return address} at `addr`, or returns
// false, never faulting. Async-signal-safe.
bool read_frame(std::uintptr_t addr, std::uintptr_t out[2]) noexcept {
  if (g_use_pipe) return read_frame_via_pipe(addr, out);
  iovec local{out, 16};
  iovec remote{reinterpret_cast<void*>(addr), 16};
  // The raw syscall: no sanitizer interceptor runs inside the handler.
  return syscall(SYS_process_vm_readv, g_pid, &local, 1UL, &remote, 1UL, 0UL) == 16;
}

// The interrupted pc, then return addresses up the frame-pointer chain.
int walk_stack(const void* context, std::uintptr_t* pcs, int max_depth) noexcept {
#if defined(__x86_64__)
  const greg_t* regs = static_cast<const ucontext_t*>(context)->uc_mcontext.gregs;
  auto fp = static_cast<std::uintptr_t>(regs[REG_RBP]);
  auto low = static_cast<std::uintptr_t>(regs[REG_RSP]);
  int n = 0;
  pcs[n++] = static_cast<std::uintptr_t>(regs[REG_RIP]);
  while (n < max_depth) {
    // A frame record lies above the stack pointer, aligned, each one above the
    // last and not far from it. Code without frame pointers (often libc) uses
    // rbp for data, which these checks usually catch before any read.
    if (fp % 8 != 0 || fp < low || fp - low > kMaxFrameBytes) break;
    std::uintptr_t record[2];  // saved rbp, return address
    if (!read_frame(fp, record) || record[1] < 4096) break;
    pcs[n++] = record[1];
    low = fp + 16;
    fp = record[0];
  }
  return n;
#else
  (void)context, (void)pcs, (void)max_depth;
  return 0;
#endif
}

void on_sigprof(int, siginfo_t*, void* context) {
  const int saved_errno = errno;
  g_in_handler.fetch_add(1);  // seq_cst: see "state shared with the signal handler"
  if (g_collecting.load()) {
    std::uintptr_t pcs[kMaxDepth];
    int n = walk_stack(context, pcs, g_max_depth);
    if (n > 0) g_ring->push(gettid(), pcs, n);
  }
  g_in_handler.fetch_sub(1);
  errno = saved_errno;
}

// -- the SIGPROF handler, for the duration of one profile ---
class SigprofHandler {
 public:
  // REQUIRES: g_busy is ours. `ring` outlives this object.
  Result<void> start(SampleRing& ring, int max_depth) {
    if (sigaction(SIGPROF, nullptr, &old_) != 0) return unexpected(std::string("profiler: cannot read SIGPROF action"));
    if (old_.sa_handler != SIG_DFL && old_.sa_handler != SIG_IGN) {
      return unexpected(std::string("profiler: SIGPROF already has a handler (another profiler is active)"));
    }
    g_pid = getpid();
    std::uintptr_t probe[2] = {1, 2}, copy[2];
    g_use_pipe = g_pipe_for_test.load() || !read_frame(reinterpret_cast<std::uintptr_t>(probe), copy);
    if (g_use_pipe && pipe2(g_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
      return unexpected("profiler: pipe2: " + std::string(std::strerror(errno)));
    }
    g_ring = &ring;
    g_max_depth = max_depth;
    g_collecting.store(true);
    struct sigaction action {};
    action.sa_sigaction = on_sigprof;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGPROF, &action, nullptr) != 0) {
      stop();
      return unexpected("profiler: sigaction(SIGPROF): " + std::string(std::strerror(errno)));
    }
    installed_ = true;
    return {};
  }

  // REQUIRES: every timer is deleted. Afterwards no handler touches the ring.
  void stop() {
    if (installed_) {
      // Signals of deleted timers may still be queued; SIG_IGN discards them
      // on every thread, so restoring SIG_DFL cannot kill the process.
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      sigemptyset(&ignore.sa_mask);
      sigaction(SIGPROF, &ignore, nullptr);
    }
    g_collecting.store(false);
    while (g_in_handler.load() != 0) std::this_thread::yield();
    if (installed_) sigaction(SIGPROF, &old_, nullptr);
    installed_ = false;
    g_ring = nullptr;
    if (g_pipe[0] >= 0) {
      close(g_pipe[0]);
      close(g_pipe[1]);
      g_pipe[0] = g_pipe[1] = -1;
    }
  }

  ~SigprofHandler() { stop(); }

 private:
  struct sigaction old_ {};
  bool installed_ = false;
};

// -- per-thread CPU-time timers ---
// Profiling thread only.
class ThreadTimers {
 public:
  ThreadTimers(int frequency_hz, pid_t self) : self_(self) {
    long long ns = 1'000'000'000LL / frequency_hz;
    period_.tv_sec = static_cast<time_t>(ns / 1'000'000'000LL);
    period_.tv_nsec = static_cast<long>(ns % 1'000'000'000LL);
  }
  ~ThreadTimers() { stop(); }

  // Starts timers for new threads, deletes those of finished ones, and
  // refreshes thread names.
  void rescan() {
    std::map<pid_t, timer_t> still;
    if (DIR* dir = opendir("/proc/self/task")) {
      while (dirent* e = readdir(dir)) {
        pid_t tid = static_cast<pid_t>(std::atoi(e->d_name));
        if (tid <= 0 || tid == self_) continue;
        if (auto it = timers_.find(tid); it != timers_.end()) {
          still.insert(*it);
          timers_.erase(it);
        } else if (timer_t t; start(tid, &t)) {
          still.emplace(tid, t);
        } else {
          continue;  // the thread has just exited
        }
        std::ifstream comm("/proc/self/task/" + std::to_string(tid) + "/comm");
        if (std::string name; std::getline(comm, name)) names_[tid] = name;
      }
      closedir(dir);
    }
    stop();  // what is left in timers_ belongs to finished threads
    timers_ = std::move(still);
  }

  void stop() {
    for (auto& [tid, t] : timers_) timer_delete(t);
    timers_.clear();
  }

  std::string name(pid_t tid) const {
    auto it = names_.find(tid);
    return it != names_.end() ? it->second : "[thread " + std::to_string(tid) + "]";
  }
  int threads() const { return threads_; }
  int wall_clock_threads() const { return wall_clock_threads_; }

 private:
  // The kernel's encoding of a thread's CPU-time clock, which
  // pthread_getcpuclockid() would give for a pthread_t (we only have tids).
  static clockid_t thread_cpu_clock(pid_t tid) {
    constexpr clockid_t kPerThread = 4, kSched = 2;
    return static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | kPerThread | kSched);
  }

  bool start(pid_t tid, timer_t* t) {
    sigevent ev{};
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = SIGPROF;
    ev._sigev_un._tid = tid;  // sigev_notify_thread_id
    bool wall_clock = false;
    if (timer_create(thread_cpu_clock(tid), &ev, t) != 0) {
      if (timer_create(CLOCK_MONOTONIC, &ev, t) != 0) return false;
      wall_clock = true;
    }
    itimerspec spec{period_, period_};
    if (timer_settime(*t, 0, &spec, nullptr) != 0) {
      timer_delete(*t);
      return false;
    }
    ++threads_;
    wall_clock_threads_ += wall_clock ? 1 : 0;
    return true;
  }

  const pid_t self_;
  timespec period_{};
  std::map<pid_t, timer_t> timers_;     // running
  std::map<pid_t, std::string> names_;  // every thread seen, kept after it exits
  int threads_ = 0;
  int wall_clock_threads_ = 0;
};

// -- symbolization ---
std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> out(abi::__cxa_demangle(name, nullptr, nullptr, &status), &std::free);
  return status == 0 && out ? std::string(out.get()) : std::string(name);
}

std::string module_offset(const char* path, std::uintptr_t offset) {
  std::string module = path != nullptr ? path : "[unknown]";
  module = module.substr(module.rfind('/') + 1);
  char buf[32];
  std::snprintf(buf, sizeof buf, "+0x%jx", static_cast<std::uintmax_t>(offset));
  return module + buf;
}

// Names code addresses: libdw reads .symtab, which also lists static
// functions, and separate debug info; dladdr knows exported symbols only.
class Symbolizer {
 public:
  Symbolizer() {
    static char* debuginfo_path = nullptr;  // the default search path
    static const Dwfl_Callbacks callbacks = {dwfl_linux_proc_find_elf, dwfl_standard_find_debuginfo, nullptr,
                                             &debuginfo_path};
    dwfl_ = dwfl_begin(&callbacks);
    if (dwfl_ == nullptr) return;
    dwfl_report_begin(dwfl_);
    if (dwfl_linux_proc_report(dwfl_, getpid()) != 0 || dwfl_report_end(dwfl_, nullptr, nullptr) != 0) {
      dwfl_end(dwfl_);
      dwfl_ = nullptr;
    }
  }
  ~Symbolizer() {
    if (dwfl_ != nullptr) dwfl_end(dwfl_);
  }
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  const std::string& name(std::uintptr_t pc) {
    auto it = cache_.find(pc);
    if (it == cache_.end()) it = cache_.emplace(pc, lookup(pc)).first;
    return it->second;
  }

 private:
  std::string lookup(std::uintptr_t pc) {
    if (Dwfl_Module* mod = dwfl_ != nullptr ? dwfl_addrmodule(dwfl_, pc) : nullptr) {
      if (const char* sym = dwfl_module_addrname(mod, pc)) return demangle(sym);
      Dwarf_Addr start = 0;
      const char* path = dwfl_module_info(mod, nullptr, &start, nullptr, nullptr, nullptr, nullptr, nullptr);
      return module_offset(path, pc - start);
    }
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(pc), &info) != 0) {
      if (info.dli_sname != nullptr) return demangle(info.dli_sname);
      return module_offset(info.dli_fname, pc - reinterpret_cast<std::uintptr_t>(info.dli_fbase));
    }
    return module_offset(nullptr, pc);
  }

  Dwfl* dwfl_ = nullptr;
  std::unordered_map<std::uintptr_t, std::string> cache_;
};

// Raw samples by {tid, pcs...}.
struct StackHash {
  std::size_t operator()(const std::vector<std::uintptr_t>& v) const noexcept {
    std::size_t h = 0;
    for (std::uintptr_t x : v) h = (h ^ x) * 0x100000001b3ull;
    return h;
  }
};
using RawProfile = std::unordered_map<std::vector<std::uintptr_t>, std::uint64_t, StackHash>;

Result<void> validate(const ProfileOptions& o) {
  if (o.duration < 1ms || o.duration > 1h) {
    return unexpected("profiler: duration " + std::to_string(o.duration.count()) + " ms is out of range (1 ms .. 1 h)");
  }
  if (o.frequency_hz < 1 || o.frequency_hz > 1000) {
    return unexpected("profiler: frequency " + std::to_string(o.frequency_hz) + " Hz is out of range (1 .. 1000 Hz)");
  }
  if (o.max_depth < 1 || o.max_depth > kMaxDepth) {
    return unexpected("profiler: max_depth " + std::to_string(o.max_depth) + " is out of range (1 .. " +
                      std::to_string(kMaxDepth) + ")");
  }
  return {};
}

}  // namespace

Result<FoldedStacks> profile_cpu(const ProfileOptions& options, ProfileStats* stats) {
  if (auto ok = validate(options); !ok) return unexpected(ok.error());
#if !defined(__x86_64__) || !defined(__linux__)
  return unexpected(std::string("profiler: unsupported architecture (needs x86-64 Linux)"));
#else
  if (bool idle = false; !g_busy.compare_exchange_strong(idle, true)) {
    return unexpected(std::string("profiler: a profile is already running"));
  }
  struct Release {
    ~Release() { g_busy.store(false); }
  } release;

  // Declaration order is teardown order, reversed: timers go first, then the
  // handler, then the ring it writes to.
  SampleRing ring(options.max_depth);
  SigprofHandler handler;
  if (auto ok = handler.start(ring, options.max_depth); !ok) return unexpected(ok.error());
  ThreadTimers timers(options.frequency_hz, gettid());

  RawProfile raw;
  std::vector<std::uintptr_t> key;
  auto collect = [&](pid_t tid, std::span<const std::uintptr_t> pcs) {
    key.assign(1, static_cast<std::uintptr_t>(tid));
    key.insert(key.end(), pcs.begin(), pcs.end());
    ++raw[key];
  };
  const auto deadline = std::chrono::steady_clock::now() + options.duration;
  auto next_scan = std::chrono::steady_clock::now();
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    if (now >= next_scan) {
      timers.rescan();
      next_scan = now + kRescanPeriod;
    }
    ring.drain(collect);
    if (now >= deadline || (options.stop != nullptr && options.stop->load(std::memory_order_relaxed))) break;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(kDrainPeriod, deadline - now));
  }
  timers.stop();
  handler.stop();
  ring.drain(collect);

  // Root first. Return addresses point after their call: pc - 1 is inside it.
  FoldedStacks out;
  Symbolizer symbols;
  std::vector<std::string_view> frames;
  std::uint64_t samples = 0;
  for (const auto& [stack, count] : raw) {
    frames.clear();
    std::string thread;
    if (options.thread_names) {
      thread = timers.name(static_cast<pid_t>(stack[0]));
      frames.push_back(thread);
    }
    for (std::size_t i = stack.size() - 1; i >= 1; --i) {
      frames.push_back(symbols.name(i == 1 ? stack[i] : stack[i] - 1));
    }
    out.add_frames(frames, count);
    samples += count;
  }
  out.add("[dropped]", ring.dropped());
  if (stats != nullptr) {
    *stats = ProfileStats{samples + ring.dropped(), ring.dropped(), timers.threads(), timers.wall_clock_threads()};
  }
  return out;
#endif
}

bool cpu_profile_running() { return g_busy.load(); }

void use_pipe_reader_for_test(bool on) { g_pipe_for_test.store(on); }

}  // namespace swarm::metrics

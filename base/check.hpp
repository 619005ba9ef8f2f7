#pragma once
// Three kinds of checks:
//   SWARM_DCHECK(c)  debug builds only; documents an invariant on a hot path.
//   SWARM_CHECK(c)   always on; a broken invariant that makes going on unsafe aborts.
//   SWARM_BUG(c)     always on; in release it logs and counts, and the caller recovers.

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace swarm::detail {

[[noreturn]] inline void check_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "swarm: check failed: %s at %s:%d\n", expr, file, line);
  std::abort();
}

inline std::atomic<unsigned long>& bug_count() {
  static std::atomic<unsigned long> count{0};
  return count;
}

inline bool report_bug(const char* expr, const char* file, int line) {
  bug_count().fetch_add(1, std::memory_order_relaxed);
  std::fprintf(stderr, "swarm: bug: %s at %s:%d\n", expr, file, line);
  return true;
}

}  // namespace swarm::detail

#define SWARM_CHECK(c) \
  ((c) ? (void)0 : ::swarm::detail::check_failed(#c, __FILE__, __LINE__))
#ifdef NDEBUG
#define SWARM_DCHECK(c) ((void)0)
#else
#define SWARM_DCHECK(c) SWARM_CHECK(c)
#endif
// Evaluates to true when the condition is false (a bug was reported).
#define SWARM_BUG(c) (!(c) && ::swarm::detail::report_bug(#c, __FILE__, __LINE__))

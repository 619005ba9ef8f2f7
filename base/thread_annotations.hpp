#pragma once
// Clang thread-safety annotations; no-ops on other compilers.
#if defined(__clang__)
#define SWARM_TSA(x) __attribute__((x))
#else
#define SWARM_TSA(x)
#endif

#define SWARM_CAPABILITY(x) SWARM_TSA(capability(x))
#define SWARM_GUARDED_BY(x) SWARM_TSA(guarded_by(x))
#define SWARM_PT_GUARDED_BY(x) SWARM_TSA(pt_guarded_by(x))
#define SWARM_REQUIRES(...) SWARM_TSA(requires_capability(__VA_ARGS__))
#define SWARM_EXCLUDES(...) SWARM_TSA(locks_excluded(__VA_ARGS__))
#define SWARM_ACQUIRE(...) SWARM_TSA(acquire_capability(__VA_ARGS__))
#define SWARM_RELEASE(...) SWARM_TSA(release_capability(__VA_ARGS__))
#define SWARM_SCOPED_CAPABILITY SWARM_TSA(scoped_lockable)
#define SWARM_NO_THREAD_SAFETY_ANALYSIS SWARM_TSA(no_thread_safety_analysis)

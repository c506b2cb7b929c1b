// Package contain keeps each worker and everything it forks together, so
// that baton can kill all of it, count its memory and limit it, whatever
// the worker does: a child that calls setsid(2) or double-forks stays
// contained.
//
// Two strategies, picked once by Setup:
//
//   - "cgroup": under systemd with Delegate=yes (systemd.resource-control(5)),
//     baton moves itself to a leaf cgroup of its own (supervisor) and starts
//     each worker directly in a cgroup of its own below the service's
//     (clone(2)'s CLONE_INTO_CGROUP), kills it with cgroup.kill, reads its
//     memory from memory.current and applies memory.max and cpu.weight (see
//     cgroups(7) and the kernel's cgroup-v2 documentation). cgroup v2 only:
//     the whole of a unified hierarchy, or the cgroup2 part of a hybrid one.
//   - "process-group": everywhere else, each worker leads a session of its
//     own and baton is a child subreaper (prctl(2) PR_SET_CHILD_SUBREAPER),
//     so descendants that escape their worker's session are re-parented to
//     baton instead of init, where they are attributed to their worker by
//     ancestry, session or the BATON_WORKER_ID variable they inherited.
//
// docs/containment.md says what each guarantees and where it falls short.
package contain

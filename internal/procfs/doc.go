// Package procfs reads the few facts baton needs about processes from
// /proc (proc(5)): a process's parent, whether it is alive, its memory
// and the service unit it runs in (cgroups(7)).
package procfs

// Package health answers an orchestrator's probes: /livez (baton's event
// loop answers) and /readyz (baton serves: enough workers are ready and it
// is neither draining nor stopping). They are served beside /metrics on
// baton's metrics socket, so one port carries what the node asks of baton.
//
// The two mean different things on purpose, as Kubernetes's probes do:
// liveness failing restarts the container, readiness failing only takes it
// out of its Service's endpoints. A pool that is booting, crash-looping or
// draining is alive but not ready; only a supervisor that stopped answering
// is dead. See
// https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/
package health

// Package kubecheck compares baton's settings with the Kubernetes workload
// that runs it, as internal/unitcheck does with a systemd unit: the
// termination grace period against drain-delay and graceful-timeout, the
// probes against what baton serves on which port, a preStop sleep against
// drain-delay, and a shell that would keep SIGTERM from baton.
//
// It reads manifests as kubectl does (YAML through sigs.k8s.io/yaml into
// the JSON field names of the Kubernetes API), but only the fields it
// checks: it is not a schema validator (the deploy/ module's tests decode
// the shipped manifests strictly with the API's own types). The fields
// follow https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/
package kubecheck

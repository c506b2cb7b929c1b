// Package deploy holds no code: its tests check the deployment files
// beside them. The Kubernetes manifests are decoded strictly with the
// Kubernetes API's own types (k8s.io/api) and checked against baton's
// config and what baton serves; the Dockerfile is parsed with BuildKit's
// parser and what it describes is built and run without a Docker engine.
//
// It is a module of its own so that the Kubernetes and BuildKit modules
// stay out of baton's dependency graph; .ci/run runs its tests.
package deploy

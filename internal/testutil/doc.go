// Package testutil holds helpers shared by baton's tests: leak checks for
// file descriptors and processes.
package testutil

package main

import (
	"fmt"
	"os/exec"
	"strings"

	"github.com/batonhq/baton/bench/load"
)

// A reports case is one way of running the example: under baton, or under
// a harness that plays baton's part in passing a scoreboard (until baton
// passes one itself) and is otherwise the example alone, with request
// reporting off, by datagram or through the scoreboard.
type reportsCase struct {
	name    string
	runner  string // "baton" or "harness"
	reports string // BATON_REQUEST_REPORTS for the workers
	board   bool   // the harness passes a scoreboard
	// again marks a second, identical case: the calibration measures
	// reporting off beside reporting off, to show what the method itself
	// makes of two identical pools.
	again bool
}

// slug names the case's files.
func (c reportsCase) slug() string {
	if c.again {
		return c.runner + "-" + c.reports + "-again"
	}
	return c.runner + "-" + c.reports
}

var (
	batonOff        = reportsCase{name: "baton, reporting off", runner: "baton", reports: "off"}
	batonDatagrams  = reportsCase{name: "baton, datagrams", runner: "baton", reports: "notify"}
	batonScoreboard = reportsCase{name: "baton, scoreboard", runner: "baton", reports: "scoreboard"}
	alone           = reportsCase{name: "the example alone (no baton, no reporting)", runner: "harness", reports: "off"}
	harnessBoard    = reportsCase{name: "harness, scoreboard", runner: "harness", reports: "scoreboard", board: true}
	aloneAgain      = reportsCase{name: "the example alone, again (A/A)", runner: "harness", reports: "off", again: true}
)

// pair is a case measured beside its reference, both at once.
type pair struct{ ref, c reportsCase }

// reportsPairs are the comparisons to run: each reporting case beside
// reporting off under the same runner; baton without reporting beside the
// example alone (what baton costs a request it is not in the path of);
// and, to calibrate, the example alone beside itself. The scoreboard under
// baton runs when baton passes scoreboards (or when asked for, which fails
// until it does); skipped says why it did not.
func reportsPairs(askBatonScoreboard, calibrate bool) (pairs []pair, skipped string, err error) {
	pairs = []pair{{batonOff, batonDatagrams}}
	wired, why := batonPassesScoreboards()
	switch {
	case wired:
		pairs = append(pairs, pair{batonOff, batonScoreboard})
	case askBatonScoreboard:
		return nil, "", fmt.Errorf("-baton-scoreboard: %s", why)
	default:
		skipped = "baton, scoreboard: left out: " + why + "; the harness below plays baton's part"
	}
	pairs = append(pairs, pair{alone, harnessBoard}, pair{alone, batonOff})
	if calibrate {
		pairs = append(pairs, pair{alone, aloneAgain})
	}
	return pairs, skipped, nil
}

// batonPassesScoreboards is whether baton's binary has the scoreboard in
// it, which is how it passes one to workers, and if not, why not.
func batonPassesScoreboards() (bool, string) {
	const pkg = "github.com/batonhq/baton/scoreboard"
	root, err := load.ModuleRoot()
	if err != nil {
		return false, err.Error()
	}
	cmd := exec.Command("go", "list", "-deps", "./cmd/baton")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return false, fmt.Sprintf("go list -deps ./cmd/baton: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == pkg {
			return true, ""
		}
	}
	return false, "baton does not pass scoreboards yet (cmd/baton does not use package scoreboard)"
}

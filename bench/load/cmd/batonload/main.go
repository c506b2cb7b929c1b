package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/batonhq/baton/bench/load"
)

func main() {
	var o load.Options
	var csvPath string
	var failures int
	flag.StringVar(&o.URL, "url", "http://127.0.0.1:8080/", "URL to GET")
	flag.StringVar(&o.Host, "host", "", "Host header (default: the URL's host)")
	flag.IntVar(&o.Clients, "c", 8, "clients (connections at once)")
	flag.DurationVar(&o.Duration, "d", 10*time.Second, "duration")
	flag.IntVar(&o.Requests, "n", 0, "stop after this many requests (0: no limit)")
	flag.BoolVar(&o.KeepAlive, "keepalive", false, "reuse connections (default: a fresh connection per request)")
	flag.Float64Var(&o.Rate, "rate", 0, "requests per second, open loop (0: closed loop)")
	flag.DurationVar(&o.Timeout, "timeout", 10*time.Second, "per-request timeout")
	flag.DurationVar(&o.DialTimeout, "dial-timeout", 5*time.Second, "connect timeout")
	flag.BoolVar(&o.BodyLine, "body-line", false, "keep each answer's first body line (in the CSV)")
	flag.StringVar(&csvPath, "csv", "", "write every request to this CSV file")
	flag.IntVar(&failures, "failures", 10, "failed requests to list")
	flag.Parse()
	failed, err := run(o, csvPath, failures, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "batonload:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

func run(o load.Options, csvPath string, failures int, out io.Writer) (failed bool, err error) {
	r, err := load.Run(context.Background(), o)
	if err != nil {
		return false, err
	}
	if csvPath != "" {
		if err := r.SaveCSV(csvPath); err != nil {
			return false, err
		}
	}
	s := r.Summary()
	mode := "closed loop"
	if o.Rate > 0 {
		mode = fmt.Sprintf("%g req/s", o.Rate)
	}
	fmt.Fprintf(out, "GET %s, %d clients, %s, keep-alive %t\n%s\n", o.URL, o.Clients, mode, o.KeepAlive, s)
	for i, x := range r.Failures() {
		if i == failures {
			fmt.Fprintf(out, "... and %d more\n", s.Failed-failures)
			break
		}
		fmt.Fprintln(out, x)
	}
	return s.Failed > 0, nil
}

// Command batonload drives one URL with the repository's load generator
// (bench/load) and prints the summary: requests, failures by kind (and how
// many came on reused connections), throughput and latency percentiles.
// It never retries a request.
//
//	go run ./bench/load/cmd/batonload -url http://127.0.0.1:8080/ -c 8 -d 10s [-keepalive] [-rate 500] [-csv out.csv]
//
// Without -rate, each of the -c clients sends its next request when the
// previous one finished; with -rate, requests start at that many per second
// over at most -c connections, and latency counts from each request's
// scheduled start. -csv writes every request, one per line, to re-examine
// a run. It exits 1 when a request failed.
package main

package kubecheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonhq/baton/internal/config"
	"github.com/spf13/pflag"
)

func bind(fs *pflag.FlagSet) *config.Flags {
	f := config.BindFlags(fs)
	fs.String("log-format", "auto", "")
	return f
}

const goodConfig = `command = ["/app"]
workers = 2
drain-delay = "5s"
graceful-timeout = "20s"
metrics-socket = "metrics"
[sockets.web]
listen = "tcp://0.0.0.0:8080"
[sockets.metrics]
listen = "tcp://0.0.0.0:9100"
`

// pod is a Deployment whose container fields are replaced by the test.
func pod(grace, container string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
` + grace + `
      containers:
        - name: baton
          image: baton-hello
` + container + `
      volumes:
        - name: config
          configMap: {name: web-baton}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-baton}
data:
  baton.toml: |
` + indent(goodConfig, "    ")
}

func indent(s, by string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString(by + l)
		}
	}
	return b.String()
}

const (
	grace30 = "      terminationGracePeriodSeconds: 30"
	probes  = `          args: ["--config", "/etc/baton/baton.toml"]
          ports: [{name: http, containerPort: 8080}, {name: metrics, containerPort: 9100}]
          volumeMounts: [{name: config, mountPath: /etc/baton}]
          readinessProbe: {httpGet: {path: /readyz, port: metrics}}
          livenessProbe: {httpGet: {path: /livez, port: 9100}}`
)

func check(t *testing.T, manifest string, o Options) []Finding {
	t.Helper()
	var m Manifests
	if err := m.Parse("test.yaml", []byte(manifest)); err != nil {
		t.Fatal(err)
	}
	if o.Bind == nil {
		o.Bind = bind
	}
	f, err := Check(&m, o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestConsistentWorkloadHasNoFindings(t *testing.T) {
	if f := check(t, pod(grace30, probes), Options{}); len(f) != 0 {
		t.Errorf("findings: %v", f)
	}
	// The same config from a local file, with the pod's env on top.
	p := filepath.Join(t.TempDir(), "baton.toml")
	if err := os.WriteFile(p, []byte(goodConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	if f := check(t, pod(grace30, probes+"\n          env: [{name: BATON_LOG_FORMAT, value: json}]"), Options{ConfigFile: p}); len(f) != 0 {
		t.Errorf("findings: %v", f)
	}
}

func TestFindings(t *testing.T) {
	for _, tc := range []struct {
		name, manifest string
		sev            Severity
		want           string
	}{
		{"default grace period", pod("", probes), "", ""},
		{"grace too short", pod("      terminationGracePeriodSeconds: 29", probes), Error,
			"terminationGracePeriodSeconds is 29, shorter than drain-delay 5s + graceful-timeout 20s + 5s for baton itself = 30s: the kubelet SIGKILLs baton and its workers mid-drain; set terminationGracePeriodSeconds: 30"},
		{"env lengthens the drain", pod(grace30, probes+"\n          env: [{name: BATON_GRACEFUL_TIMEOUT, value: 1m}]"), Error,
			"shorter than drain-delay 5s + graceful-timeout 1m0s + 5s for baton itself = 1m10s"},
		{"args lengthen the drain", pod(grace30, strings.Replace(probes, `"/etc/baton/baton.toml"]`, `"/etc/baton/baton.toml", "--drain-delay", "10s"]`, 1)), Error,
			"set terminationGracePeriodSeconds: 35"},
		{"preStop sleep counts and double-counts", pod(grace30, probes+"\n          lifecycle: {preStop: {sleep: {seconds: 5}}}"), Warning,
			"the preStop sleep action (5s) and drain-delay (5s) both wait"},
		{"preStop exec sleep counts", pod(grace30, probes+`
          lifecycle: {preStop: {exec: {command: ["/bin/sh", "-c", "sleep 3"]}}}`), Error,
			"shorter than the preStop exec sleep 3s + drain-delay 5s"},
		{"liveness on readyz", pod(grace30, strings.Replace(probes, "path: /livez", "path: /readyz", 1)), Error,
			"livenessProbe asks /readyz: the kubelet restarts baton whenever it is not ready"},
		{"readiness on livez", pod(grace30, strings.Replace(probes, "path: /readyz", "path: /livez", 1)), Warning,
			"readinessProbe asks /livez, which stays 200 while baton drains"},
		{"unknown path", pod(grace30, strings.Replace(probes, "path: /readyz", "path: \"/healthz?x=1\"", 1)), Error,
			`readinessProbe asks "/healthz?x=1", which baton does not serve`},
		{"probe on a worker", pod(grace30, strings.Replace(probes, "port: metrics", "port: http", 1)), Warning,
			"readinessProbe asks a worker (socket web on port 8080), not baton"},
		{"probe on nothing", pod(grace30, strings.Replace(probes, "port: 9100", "port: 9200", 1)), Error,
			"livenessProbe: nothing of baton's listens on port 9200 (its sockets: web on tcp://0.0.0.0:8080, metrics on tcp://0.0.0.0:9100)"},
		{"unknown named port", pod(grace30, strings.Replace(probes, "port: metrics", "port: admin", 1)), Error,
			`readinessProbe: port "admin" is not a named port of the container`},
		{"tcp probe", pod(grace30, strings.Replace(probes, "httpGet: {path: /livez, port: 9100}", "tcpSocket: {port: 9100}", 1)), Warning,
			"livenessProbe only checks that port 9100 accepts connections"},
		{"https", pod(grace30, strings.Replace(probes, "path: /livez,", "path: /livez, scheme: HTTPS,", 1)), Error,
			"livenessProbe uses HTTPS; baton serves plain HTTP"},
		{"no probes", pod(grace30, `          args: ["--config", "/etc/baton/baton.toml"]
          volumeMounts: [{name: config, mountPath: /etc/baton}]`), Warning, "no readinessProbe: the pod takes traffic as soon as baton starts"},
		{"shell", pod(grace30, strings.Replace(probes, `args: ["--config", "/etc/baton/baton.toml"]`, `command: ["/bin/sh", "-c", "baton run --config /etc/baton/baton.toml"]`, 1)), Error,
			"sh -c runs baton as a child of the shell"},
		{"shell with exec", pod(grace30, strings.Replace(probes, `args: ["--config", "/etc/baton/baton.toml"]`, `command: ["/bin/sh", "-c", "exec /usr/bin/baton run --config /etc/baton/baton.toml"]`, 1)), "", ""},
		{"tini", pod(grace30, strings.Replace(probes, `args: ["--config", "/etc/baton/baton.toml"]`, `command: ["/tini", "--", "/usr/bin/baton", "run", "--config", "/etc/baton/baton.toml"]`, 1)), "", ""},
		{"not baton", pod(grace30, strings.Replace(probes, `args: ["--config", "/etc/baton/baton.toml"]`, `command: ["/app"]`, 1)), Error,
			`no "baton run" in the container's command ["/app"]`},
		{"bad env", pod(grace30, probes+"\n          env: [{name: BATON_WORKERS, value: many}]"), Error,
			`baton would not start: BATON_WORKERS: "many" is not a number`},
		{"bad args", pod(grace30, strings.Replace(probes, `"/etc/baton/baton.toml"]`, `"/etc/baton/baton.toml", "--frobnicate"]`, 1)), Error,
			"baton would not start: container arguments: unknown flag: --frobnicate"},
		{"config not in a ConfigMap", pod(grace30, strings.Replace(probes, "/etc/baton/baton.toml", "/srv/baton.toml", 1)), Error,
			"the config file /srv/baton.toml is in the image or in a volume that is no ConfigMap of these manifests: pass the file with -c"},
		{"bad config names the ConfigMap", strings.Replace(pod(grace30, probes), "workers = 2", "workers = 0", 1), Error,
			"configmap/web-baton/baton.toml:2:1: workers: 0: must be at least 1"},
		{"metrics socket on loopback", strings.Replace(pod(grace30, probes), "0.0.0.0:9100", "127.0.0.1:9100", 1), Error,
			`socket metrics listens on tcp://127.0.0.1:9100, but the kubelet connects to the pod's IP; set [sockets.metrics] listen = "tcp://0.0.0.0:9100"`},
		{"web socket on loopback", strings.Replace(pod(grace30, probes), "0.0.0.0:8080", "127.0.0.1:8080", 1), Warning,
			"socket web listens on tcp://127.0.0.1:8080: no Service or other pod can reach it"},
		{"no metrics socket", strings.Replace(pod(grace30, probes), `metrics-socket = "metrics"`, "", 1), Error,
			"but baton serves no probes: it has no metrics-socket"},
		{"graceful infinity", strings.Replace(pod(grace30, probes), `graceful-timeout = "20s"`, `graceful-timeout = "infinity"`, 1), Error,
			"graceful-timeout is infinity: no terminationGracePeriodSeconds is long enough"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := check(t, tc.manifest, Options{})
			if tc.want == "" {
				if len(f) != 0 {
					t.Errorf("findings: %v", f)
				}
				return
			}
			for _, x := range f {
				if x.Severity == tc.sev && strings.Contains(x.String(), tc.want) {
					if !strings.HasPrefix(x.String(), "deployment/web, container baton: "+string(tc.sev)+": ") {
						t.Errorf("finding does not say where: %s", x)
					}
					return
				}
			}
			t.Errorf("no %s containing %q in:\n%v", tc.sev, tc.want, f)
		})
	}
}

func TestParse(t *testing.T) {
	var m Manifests
	err := m.Parse("a.yaml", []byte("apiVersion: v1\nkind: List\nitems:\n- kind: Pod\n  metadata: {name: p}\n  spec: {containers: [{name: c}]}\n- kind: Service\n  metadata: {name: s}\n---\n# only a comment\n--- # a separator with a comment\nkind: DaemonSet\nmetadata: {name: d}\nspec: {template: {spec: {containers: [{name: c}]}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range m.Workloads {
		got = append(got, w.String())
	}
	if strings.Join(got, " ") != "pod/p daemonset/d" {
		t.Errorf("workloads %v", got)
	}
	for _, tc := range []struct{ doc, want string }{
		{"kind: Pod\nspec: {containers: [{name: c, ports: [{containerPort: x}]}]}\n", "a.yaml: document 1: Pod : json: cannot unmarshal"},
		{"kind: Pod\n  bad: [\n", "a.yaml: document 1: yaml: line 2: mapping values are not allowed"},
	} {
		var m Manifests
		if err := m.Parse("a.yaml", []byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.doc, err, tc.want)
		}
	}
}

func TestContainerChoice(t *testing.T) {
	two := strings.Replace(pod(grace30, probes), "      volumes:", "        - name: sidecar\n          image: s\n      volumes:", 1)
	if f := check(t, two, Options{}); len(f) != 0 {
		t.Errorf("the container called baton: %v", f)
	}
	var m Manifests
	if err := m.Parse("t.yaml", []byte(strings.Replace(two, "- name: baton", "- name: main", 1))); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(&m, Options{Bind: bind}); err == nil || !strings.Contains(err.Error(), "which container runs baton? pass --container, one of main, sidecar") {
		t.Errorf("ambiguous: %v", err)
	}
	if f, err := Check(&m, Options{Bind: bind, Container: "main"}); err != nil || len(f) != 0 {
		t.Errorf("--container main: %v %v", f, err)
	}
	if _, err := Check(&Manifests{}, Options{Bind: bind}); err == nil {
		t.Error("nothing to check, no error")
	}
}

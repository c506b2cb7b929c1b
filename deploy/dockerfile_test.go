package deploy

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/testutil"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The image's base, and what the test gives the root it runs the image
// in for it: distroless static has no shell, no libc and no package
// manager; of its files baton needs /tmp (1777), for its private runtime
// directory. A container runtime adds /proc and /dev.
const (
	baseImage = "gcr.io/distroless/static-debian12:nonroot"
	basePATH  = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// image is the Dockerfile, parsed and expanded as BuildKit would.
type image struct {
	build, final instructions.Stage
	buildEnv     []string // ENV of the build stage, expanded
	runs         [][]string
	copies       []*instructions.CopyCommand
	user         string
	entrypoint   []string
	cmd          []string
	expose       []string
}

func parseDockerfile(t *testing.T) image {
	t.Helper()
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: %s", w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		t.Errorf("Dockerfile:%v: BuildKit's linter: %s: %s", loc, rule, msg)
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 {
		t.Fatalf("%d stages, want a build stage and the image", len(stages))
	}
	lex := shell.NewLex(res.EscapeToken)
	var global []string
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			global = append(global, kv.Key+"="+kv.ValueString())
		}
	}
	expand := func(env []string, word string) string {
		s, _, err := lex.ProcessWord(word, shell.EnvsFromSlice(env))
		if err != nil {
			t.Fatalf("expand %q: %v", word, err)
		}
		return s
	}
	im := image{build: stages[0], final: stages[1]}
	im.build.BaseName = expand(global, im.build.BaseName)
	im.final.BaseName = expand(global, im.final.BaseName)

	env := []string{}
	for _, c := range im.build.Commands {
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				env = append(env, kv.Key+"="+kv.ValueString())
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				v := expand(env, kv.Value)
				env = append(env, kv.Key+"="+v)
				im.buildEnv = append(im.buildEnv, kv.Key+"="+v)
			}
		case *instructions.RunCommand:
			if c.PrependShell {
				t.Errorf("Dockerfile: RUN %s is in shell form; this test runs exec form only", strings.Join(c.CmdLine, " "))
			}
			im.runs = append(im.runs, c.CmdLine)
		}
	}
	for _, c := range im.final.Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			im.copies = append(im.copies, c)
		case *instructions.UserCommand:
			im.user = c.User
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Errorf("ENTRYPOINT in shell form: /bin/sh -c would be PID 1 (and the base has no shell)")
			}
			im.entrypoint = c.CmdLine
		case *instructions.CmdCommand:
			if c.PrependShell {
				t.Errorf("CMD in shell form")
			}
			im.cmd = c.CmdLine
		case *instructions.ExposeCommand:
			im.expose = append(im.expose, c.Ports...)
		case *instructions.RunCommand:
			t.Errorf("RUN %q in the final stage: the distroless base has no shell to run it", c.CmdLine)
		}
	}
	return im
}

// imageUID is the numeric uid the image's USER sets.
func imageUID(t *testing.T) int64 {
	t.Helper()
	u, _, _ := strings.Cut(parseDockerfile(t).user, ":")
	n, err := strconv.ParseInt(u, 10, 64)
	if err != nil {
		t.Fatalf("USER %q is not numeric: Kubernetes's runAsNonRoot cannot verify a name", u)
	}
	return n
}

func TestDockerfileStructure(t *testing.T) {
	im := parseDockerfile(t)
	// The builder runs the Go that go.mod asks for.
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if m == nil || im.build.BaseName != "golang:"+string(m[1])+"-bookworm" {
		t.Errorf("build stage FROM %s, want golang:%s-bookworm (go.mod)", im.build.BaseName, m[1])
	}
	if im.build.Name != "build" || im.final.BaseName != baseImage {
		t.Errorf("stages %q FROM %s, %q FROM %s", im.build.Name, im.build.BaseName, im.final.Name, im.final.BaseName)
	}
	if !contains(im.buildEnv, "CGO_ENABLED=0") {
		t.Errorf("build env %v: a static binary needs CGO_ENABLED=0", im.buildEnv)
	}
	if uid := imageUID(t); uid == 0 || im.user != fmt.Sprintf("%d:%d", uid, uid) {
		t.Errorf("USER %q: want a non-root uid:gid", im.user)
	}
	if strings.Join(im.entrypoint, " ") != "/usr/local/bin/baton run" {
		t.Errorf("ENTRYPOINT %q, want baton run: baton is PID 1", im.entrypoint)
	}
	// What ENTRYPOINT and CMD name is in the image.
	files := map[string]string{} // in the image: where from
	for _, c := range im.copies {
		for _, src := range c.SourcePaths {
			dst := c.DestPath
			if strings.HasSuffix(dst, "/") {
				dst += path.Base(src)
			}
			files[dst] = c.From + ":" + src
		}
	}
	if files["/usr/local/bin/baton"] != "build:/out/baton" || files["/usr/local/bin/hello"] != "build:/out/hello" {
		t.Errorf("binaries in the image: %v", files)
	}
	if strings.Join(im.cmd, " ") != "--config /etc/baton/baton.toml" || files["/etc/baton/baton.toml"] != ":deploy/baton.toml" {
		t.Errorf("CMD %q with files %v: the config must be deploy/baton.toml", im.cmd, files)
	}
	cfg, err := config.Load("baton.toml")
	if err == nil {
		err = cfg.Finish()
	}
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Command[0] != "/usr/local/bin/hello" {
		t.Errorf("the config runs %s, which is not in the image", cfg.Command[0])
	}
	var ports []string
	for _, s := range cfg.Sockets {
		_, p, _ := net.SplitHostPort(s.Address.Addr)
		ports = append(ports, p)
	}
	if strings.Join(im.expose, " ") != strings.Join(ports, " ") {
		t.Errorf("EXPOSE %v, the config listens on %v", im.expose, ports)
	}
}

// TestImageRunsInAnEmptyRoot builds what the Dockerfile's build stage
// describes, lays out the image's files as its COPY lines say in an empty
// directory, and runs ENTRYPOINT + CMD there as the image's USER, as PID 1
// of a PID namespace, on a read-only root with a tmpfs /tmp as the
// Deployment mounts it: the binaries are static, baton serves, the
// Deployment's probes answer 200, and SIGTERM stops it with status 0.
func TestImageRunsInAnEmptyRoot(t *testing.T) {
	im := parseDockerfile(t)
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	out := filepath.Join(tmp, "out")
	// The build stage's working directory is the repository (WORKDIR /src,
	// COPY . .); its outputs go to /out, here under tmp.
	for _, argv := range im.runs {
		argv = append([]string(nil), argv...)
		for i, a := range argv {
			if strings.HasPrefix(a, "/out/") || a == "/out" {
				argv[i] = out + strings.TrimPrefix(a, "/out")
			} else if strings.HasPrefix(a, "/") {
				t.Fatalf("RUN %q writes to %s; this test maps /out only", argv, a)
			}
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), im.buildEnv...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("RUN %q: %v\n%s", argv, err, b)
		}
	}
	root := filepath.Join(tmp, "root")
	for _, c := range im.copies {
		for _, src := range c.SourcePaths {
			from := filepath.Join(repo, src)
			if c.From == im.build.Name {
				from = filepath.Join(out, strings.TrimPrefix(src, "/out/"))
			} else if c.From != "" {
				t.Fatalf("COPY --from=%s: unknown stage", c.From)
			}
			dst := c.DestPath
			if strings.HasSuffix(dst, "/") {
				dst += path.Base(src)
			}
			copyFile(t, from, filepath.Join(root, dst))
		}
	}
	for _, bin := range []string{"usr/local/bin/baton", "usr/local/bin/hello"} {
		checkStatic(t, filepath.Join(root, bin))
	}
	// What the base image and the runtime give: /tmp, and mount points
	// for /proc and /dev/null.
	for _, d := range []string{"tmp", "proc", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "dev", "null"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	// Directories made for COPY are the root's, readable by all.
	if err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			err = os.Chmod(p, 0o755)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}

	web, metrics := freePort(t), freePort(t)
	uid := imageUID(t)
	setup := `set -e; R=$0
mount --bind "$R" "$R"; mount -o remount,bind,ro "$R"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"; mount -t proc proc "$R/proc"; mount --bind /dev/null "$R/dev/null"
exec chroot --userspec=` + im.user + ` "$R" "$@"`
	argv := append([]string{"--pid", "--fork", "--mount", "--kill-child", "--", "/bin/sh", "-c", setup, root}, append(im.entrypoint, im.cmd...)...)
	cmd := exec.Command("unshare", argv...)
	// The image's environment, and ports free on this shared machine
	// (the environment wins over the config file).
	cmd.Env = []string{"PATH=" + basePATH, fmt.Sprintf("BATON_BIND=web=tcp://127.0.0.1:%d,metrics=tcp://127.0.0.1:%d", web, metrics)}
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	done := false
	t.Cleanup(func() {
		if !done {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("output:\n%s", logs.String())
		}
	})

	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(url string) (int, string) {
		resp, err := client.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	probes := deploymentProbes(t)
	for _, p := range probes {
		url := fmt.Sprintf("http://127.0.0.1:%d%s", metrics, p)
		if !testutil.Eventually(t, 30*time.Second, func() bool { code, _ := get(url); return code == http.StatusOK }) {
			code, body := get(url)
			t.Fatalf("the Deployment's probe %s: %d %q", p, code, body)
		}
	}
	if code, body := get(fmt.Sprintf("http://127.0.0.1:%d/", web)); code != http.StatusOK || !strings.Contains(body, "hello from worker") {
		t.Errorf("the app: %d %q", code, body)
	}
	// baton is PID 1 of its namespace, as the image's user.
	var pid int
	for _, c := range testutil.Children(cmd.Process.Pid) {
		pid = c
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^NSpid:\s+\d+\s+1$`).Match(status) || !regexp.MustCompile(fmt.Sprintf(`(?m)^Uid:\s+%d\s`, uid)).Match(status) {
		t.Errorf("baton (pid %d) is not PID 1 as uid %d:\n%s", pid, uid, status)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		done = true
		if err != nil {
			t.Errorf("after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("baton did not stop within 60s of SIGTERM")
	}
}

// deploymentProbes are the paths the shipped Deployment probes.
func deploymentProbes(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("kubernetes/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(data, &d); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
			if p != nil && p.HTTPGet != nil {
				paths = append(paths, p.HTTPGet.Path)
			}
		}
	}
	if len(paths) == 0 {
		t.Fatal("the Deployment has no httpGet probes")
	}
	return paths
}

func checkStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a dynamic loader: not static", bin)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs %v: not static", bin, libs)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	fi, err := os.Stat(from)
	if err != nil {
		t.Fatalf("COPY source: %v", err)
	}
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// lockedBuffer collects a process's output for the test to read while it
// runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

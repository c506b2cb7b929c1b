package main

import (
	"fmt"
	"io"
	"os"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/kubecheck"
	"github.com/spf13/pflag"
)

// kubernetesFlags are baton check's --kubernetes and --container.
type kubernetesFlags struct {
	files     *[]string
	container *string
}

func bindKubernetesFlags(fs *pflag.FlagSet) kubernetesFlags {
	return kubernetesFlags{
		files:     fs.StringArray("kubernetes", nil, "check the Kubernetes manifests in `FILE` (repeatable; - for stdin) against the config"),
		container: fs.String("container", "", "baton's container in the pods (default: the only one, else the one called baton)"),
	}
}

func (k kubernetesFlags) given() bool { return len(*k.files) > 0 }

// check is baton check --kubernetes: the config comes from the manifests
// (args, env, a mounted ConfigMap) and -c, never from this shell's
// environment or other flags, which the pod does not see.
func (k kubernetesFlags) check(fs *pflag.FlagSet, flags *config.Flags) error {
	var extra []string
	fs.Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "config", "kubernetes", "container":
		default:
			extra = append(extra, "--"+f.Name)
		}
	})
	if len(extra) > 0 || fs.NArg() > 0 {
		return usageError{fmt.Errorf("with --kubernetes the settings come from the manifests and -c FILE; drop %v %v", extra, fs.Args())}
	}
	var m kubecheck.Manifests
	for _, f := range *k.files {
		var data []byte
		var err error
		if f == "-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(f)
		}
		if err != nil {
			return fmt.Errorf("read manifests: %w", err)
		}
		if err := m.Parse(f, data); err != nil {
			return err
		}
	}
	findings, err := kubecheck.Check(&m, kubecheck.Options{
		Bind: func(fs *pflag.FlagSet) *config.Flags {
			f, _, _, _ := bindRunFlags(fs)
			return f
		},
		ConfigFile: flags.ConfigPath(),
		Container:  *k.container,
	})
	if err != nil {
		return err
	}
	errs := 0
	for _, f := range findings {
		if f.Severity == kubecheck.Error {
			errs++
		}
		fmt.Println(f)
	}
	if errs > 0 {
		return fmt.Errorf("manifests: %d %s", errs, pluralize(errs, "error", "errors"))
	}
	for _, w := range m.Workloads {
		fmt.Printf("%s: consistent with the config\n", w)
	}
	return nil
}

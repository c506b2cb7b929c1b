package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/batonhq/baton/internal/config"
	"github.com/batonhq/baton/internal/sdbus"
	"github.com/batonhq/baton/internal/unitcheck"
)

// checkCommand is `baton check [-c FILE] [--unit NAME]`: validate the
// config and, with a unit, compare it with what systemd will do.
func checkCommand(args []string) error {
	fs := newFlagSet("check")
	fs.SetInterspersed(false)
	flags := config.BindFlags(fs)
	unit := fs.String("unit", "", "also check the systemd `UNIT` that runs baton (read over D-Bus)")
	kube := bindKubernetesFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if kube.given() {
		return kube.check(fs, flags)
	}
	if err := flags.ApplyEnv(os.LookupEnv, checkOnlyFlags...); err != nil {
		return err
	}
	cfg, err := flags.Resolve(fs.Args())
	if err != nil {
		return err
	}
	resolved, err := cfg.CheckCommand(os.Getenv("PATH"))
	if err != nil {
		return err
	}
	where := cfg.Path
	if where == "" {
		where = "flags"
	}
	fmt.Printf("%s: config OK: %d %s of %s (%s), sockets %s\n", where, cfg.Workers, pluralize(cfg.Workers, "worker", "workers"), strings.Join(cfg.Command, " "), resolved, socketNames(cfg))
	if *unit == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := sdbus.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	svc, err := conn.Service(ctx, *unit)
	if err != nil {
		return err
	}
	errs := 0
	for _, f := range unitcheck.Check(cfg, svc) {
		if f.Severity == unitcheck.Error {
			errs++
		}
		fmt.Printf("%s: %s: %s\n", *unit, f.Severity, f)
	}
	if errs > 0 {
		return fmt.Errorf("%s: %d %s", *unit, errs, pluralize(errs, "error", "errors"))
	}
	fmt.Printf("%s: consistent with the config\n", *unit)
	return nil
}

func socketNames(c *config.Config) string {
	if len(c.Sockets) == 0 {
		return "(none configured)"
	}
	var names []string
	for _, s := range c.Sockets {
		names = append(names, s.Name+"="+s.Address.String())
	}
	return strings.Join(names, ", ")
}

func pluralize(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// checkOnlyFlags are check's own flags, which no BATON_* variable sets.
var checkOnlyFlags = []string{"unit", "kubernetes", "container"}

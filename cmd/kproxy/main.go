// Command kproxy is a drop-in replacement for kube-proxy: same flags, same
// configuration file, same rules, same ports.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/kproxy/kproxy/config"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	gcPercent, gcSource = tuneGC(os.Getenv)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// gcPercent is the garbage collector's target main set, and gcSource
// where it came from, for the startup log.
var (
	gcPercent = 100
	gcSource  = "runtime"
)

// run parses the command line and runs kproxy on this machine; it returns
// the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return runOn(realHost(), args, stdout, stderr)
}

// runOn is run on the given host (tests give a dry run their own interface
// addresses, so its output does not depend on the machine).
func runOn(h host, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("kproxy", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var flags config.Flags
	flags.AddTo(fs)
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	fs.AddGoFlagSet(klogFlags)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "kproxy:", err)
		return 2
	}
	if flags.Version {
		fmt.Fprintln(stdout, "kproxy", version)
		return 0
	}
	cfg, err := config.Resolve(&flags, fs)
	if err != nil {
		fmt.Fprintln(stderr, "kproxy: invalid configuration:", err)
		return 1
	}
	logger := klog.Background().WithName("kproxy")
	for _, f := range cfg.IgnoredFlags {
		logger.Info("Flag ignored because --config is set", "flag", f)
	}
	if cfg.WriteConfigTo != "" {
		return writeConfig(cfg, logger, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = klog.NewContext(ctx, logger)
	logger.V(1).Info("Garbage collector target", "GOGC", gcPercent, "source", gcSource)
	if err := runProxy(ctx, cfg, h, stdout); err != nil {
		logger.Error(err, "kproxy failed")
		klog.Flush()
		return 1
	}
	klog.Flush()
	return 0
}

// writeConfig is kube-proxy's --write-config-to: write the effective
// configuration (file, flags and defaults combined, validated) and exit
// without touching the host: no rules, no sysctls, no servers.
func writeConfig(cfg *config.Config, logger klog.Logger, stderr io.Writer) int {
	if err := config.WriteConfigTo(cfg.WriteConfigTo, cfg.Versioned); err != nil {
		fmt.Fprintln(stderr, "kproxy:", err)
		return 1
	}
	logger.Info("Wrote configuration", "file", cfg.WriteConfigTo)
	klog.Flush()
	return 0
}

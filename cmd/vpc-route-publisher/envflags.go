package main

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/pflag"
)

// Every flag of run and audit can also be set by an environment variable:
// envPrefix and the flag's name in capitals with dashes as underscores
// (--cluster-cidr: VPC_ROUTE_PUBLISHER_CLUSTER_CIDR). A flag on the command
// line wins over its variable, the variable over the flag's default.
//
// The manifests configure the publisher this way, so that `vpc-route-publisher
// audit` run with kubectl exec in the publisher's container reads the
// configuration of the running `run` without retyping it.
//
// Each subcommand takes the variables of its own flags and ignores those of
// the other's: the pod's environment sets run's leader election flags, which
// audit has not, and audit must still start. A variable with the prefix that
// names no flag of either subcommand is an error, so that a misspelt one
// stops the command instead of being silently ignored. An empty variable
// counts as unset.
const envPrefix = "VPC_ROUTE_PUBLISHER_"

// envName is the environment variable of a flag.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// commandEnvNames are the variables of every flag of run and audit, the
// logging flags included.
func commandEnvNames() map[string]bool {
	names := map[string]bool{}
	add := func(fs *pflag.FlagSet) {
		fs.VisitAll(func(f *pflag.Flag) { names[envName(f.Name)] = true })
	}
	r := newRunOptions(func(string) string { return "" })
	add(r.flagSet())
	add(r.loggingFlags())
	add(newAuditOptions().flagSet())
	return names
}

// envSource records the flags a subcommand took from the environment, by
// flag name, with the variable that set each.
type envSource map[string]string

// applyEnv sets each flag of fs that the command line left unset from its
// environment variable in environ (KEY=value entries, as os.Environ). A
// value the flag refuses is an error naming the variable, with the flag's
// own message; so is a variable of the prefix that names no flag of run or
// audit.
func applyEnv(fs *pflag.FlagSet, environ []string) (envSource, error) {
	values := map[string]string{}
	known := commandEnvNames()
	var unknown []string
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, envPrefix) {
			continue
		}
		if !known[k] {
			unknown = append(unknown, k)
			continue
		}
		values[k] = v
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fmt.Errorf("environment variable %s names no flag of run or audit (flags are set by %s<FLAG_NAME>, e.g. %s for --cluster-id)",
			strings.Join(unknown, ", "), envPrefix, envName("cluster-id"))
	}
	src := envSource{}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		name := envName(f.Name)
		v := values[name]
		if err != nil || f.Changed || v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("$%s: %w", name, serr)
			return
		}
		src[f.Name] = name
	})
	if err != nil {
		return nil, err
	}
	return src, nil
}

// explain adds to a configuration error which of the flags it names were
// set by an environment variable, and by which, so that an operator who
// finds no such flag on the command line knows where to look.
func (s envSource) explain(err error) error {
	if len(s) == 0 {
		return err
	}
	msg := err.Error()
	var from []string
	for _, f := range slices.Sorted(maps.Keys(s)) {
		if regexp.MustCompile(`--` + regexp.QuoteMeta(f) + `([^a-z0-9-]|$)`).MatchString(msg) {
			from = append(from, fmt.Sprintf("--%s is set by $%s", f, s[f]))
		}
	}
	if len(from) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(from, ", "))
}

// withEnvNames appends each flag's environment variable to its help text.
func withEnvNames(fs *pflag.FlagSet) *pflag.FlagSet {
	fs.VisitAll(func(f *pflag.Flag) {
		f.Usage = strings.TrimSpace(f.Usage) + " [$" + envName(f.Name) + "]"
	})
	return fs
}

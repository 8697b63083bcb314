// Package cairnbin builds a static cairn binary for the deployment tests
// and asks it whether it accepts a command line and an environment: the
// manifests are checked by cairn's own flag parser, not a copy of it.
package cairnbin

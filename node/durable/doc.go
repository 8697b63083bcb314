// Package durable writes files through a vfs.FS so that what it reports
// written survives a crash: data synced before the file is closed, and the
// directory synced after a file is created or renamed into it.
//
// The node, the server and the simulator's crash model all write small
// files this way (CURRENT, the member identity, backups, auto-TLS
// certificates); one implementation keeps the order of syncs the same
// everywhere, which is what the simulator's crash model checks.
package durable

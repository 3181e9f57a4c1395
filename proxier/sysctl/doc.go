// Package sysctl is kproxy's one accessor of sysctls: integer (and, for
// kernel/osrelease, text) files under /proc/sys of the caller's network
// namespace, named by their path under it ("net/ipv4/ip_forward"). Both
// proxy modes and cmd/kproxy's host settings go through it, so every read
// and write parses, validates and reports errors the same way.
//
// Contract: Dir.Root is the sysctl tree (ProcSys, or a temporary directory
// laid out like it in tests). A key must stay under Root. Set never creates
// a file: a missing sysctl fails as it does in /proc/sys, with an error
// that wraps the os error (so errors.Is(err, fs.ErrNotExist) or
// fs.ErrPermission work) and names the sysctl as operators write it
// ("net.ipv4.ip_forward"). Interface is the seam for code that takes a
// sysctl tree as an option.
package sysctl

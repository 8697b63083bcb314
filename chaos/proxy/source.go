package proxy

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// procNetTCP lists the IPv4 TCP sockets of the machine (Linux).
const procNetTCP = "/proc/net/tcp"

// procTCPLinesMax bounds the lines read from procNetTCP.
const procTCPLinesMax = 1 << 20

// ProcessSource returns a SourceFunc that names a connection after the
// process owning its dialing socket: pids returns the running members'
// process IDs and names; a socket no member owns is Client's.
func ProcessSource(pids func() map[int]string) SourceFunc {
	return func(remote, local *net.TCPAddr) string {
		if remote == nil || local == nil {
			return Client
		}
		name, err := SocketOwner(remote, local, pids())
		if err != nil || name == "" {
			return Client
		}
		return name
	}
}

// SocketOwner finds the TCP socket bound to remote and connected to local
// (the dialer's side of a connection a proxy accepted on local) and returns
// the name of the process in pids that holds it, or "" if none does.
func SocketOwner(remote, local *net.TCPAddr, pids map[int]string) (string, error) {
	inode, err := socketInode(procNetTCP, remote, local)
	if err != nil || inode == "" {
		return "", err
	}
	want := "socket:[" + inode + "]"
	for pid, name := range pids {
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			continue // exited or not ours to read
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
			if err == nil && target == want {
				return name, nil
			}
		}
	}
	return "", nil
}

// socketInode returns the inode of the socket in table (procNetTCP's
// format) whose local address is local and remote address remote.
func socketInode(table string, local, remote *net.TCPAddr) (string, error) {
	f, err := os.Open(table)
	if err != nil {
		return "", err
	}
	defer f.Close()
	wantLocal, wantRemote := procAddr(local), procAddr(remote)
	scanner := bufio.NewScanner(f)
	for lines := 0; scanner.Scan() && lines < procTCPLinesMax; lines++ {
		fields := strings.Fields(scanner.Text())
		if len(fields) < 10 {
			continue
		}
		if fields[1] == wantLocal && fields[2] == wantRemote {
			return fields[9], nil
		}
	}
	return "", scanner.Err()
}

// procAddr renders an IPv4 address as /proc/net/tcp does: the address's
// bytes as a little-endian hex word, then the port in hex.
func procAddr(a *net.TCPAddr) string {
	ip := a.IP.To4()
	if ip == nil {
		return ""
	}
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], a.Port)
}

// A CRI client for tests that dials like crictl and kubelet up to 1.30: a
// grpc-go ClientConn whose target is the bare socket path, without a
// "unix://" scheme. grpc-go then sends that path as every request's
// :authority, which is what frakti's socket must accept.
//
// It knows no CRI types. Each call's request is protobuf bytes that the
// test encoded, and each reply goes back as bytes for the test to decode, so
// the client needs nothing but grpc-go (Debian's golang-google-grpc-dev).
// All calls share one connection, in order, as kubelet's do; the second and
// later calls thus exercise the HPACK dynamic table that the first filled.
//
// Usage:
//
//	go-client -sock PATH [-authority NAME] [-timeout 30s] -method /svc/Method [-method ...]
//
// stdin holds one request per -method, each a 4-byte big-endian length and
// the message; stdout gets one reply per call in the same framing. On a
// failed call it prints "call N METHOD: code=CODE desc=MESSAGE" on stderr
// and exits 1; bad usage exits 2.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// maxMessageBytes bounds one request read from stdin (kubelet's own limit).
const maxMessageBytes = 16 << 20

// rawCodec hands the bytes through: requests arrive encoded, replies leave
// undecoded. Its name "proto" keeps the content-type application/grpc+proto.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*p = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

type methods []string

func (m *methods) String() string     { return strings.Join(*m, ",") }
func (m *methods) Set(s string) error { *m = append(*m, s); return nil }

func readFrame(r io.Reader) ([]byte, error) {
	var n uint32
	if err := binary.Read(r, binary.BigEndian, &n); err != nil {
		return nil, err
	}
	if n > maxMessageBytes {
		return nil, fmt.Errorf("request of %d bytes is over the %d limit", n, maxMessageBytes)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

func writeFrame(w io.Writer, b []byte) error {
	if err := binary.Write(w, binary.BigEndian, uint32(len(b))); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(code)
}

func main() {
	var calls methods
	sock := flag.String("sock", "", "path of the CRI unix socket, dialled without a scheme")
	authority := flag.String("authority", "", "send this :authority instead of the socket path")
	timeout := flag.Duration("timeout", 30*time.Second, "bound on the dial and on each call")
	flag.Var(&calls, "method", "full method name, e.g. /runtime.v1.RuntimeService/Version (repeatable)")
	flag.Parse()
	if *sock == "" || len(calls) == 0 || flag.NArg() != 0 {
		fail(2, "usage: go-client -sock PATH [-authority NAME] [-timeout D] -method /svc/M [-method ...] < requests")
	}

	in := bufio.NewReader(os.Stdin)
	reqs := make([][]byte, len(calls))
	for i := range calls {
		b, err := readFrame(in)
		if err != nil {
			fail(2, "request %d from stdin: %v", i+1, err)
		}
		reqs[i] = b
	}

	opts := []grpc.DialOption{
		grpc.WithInsecure(),
		grpc.WithBlock(),
		// The dialer gets the target as written: the socket path.
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		}),
	}
	if *authority != "" {
		opts = append(opts, grpc.WithAuthority(*authority))
	}
	dialCtx, cancelDial := context.WithTimeout(context.Background(), *timeout)
	conn, err := grpc.DialContext(dialCtx, *sock, opts...)
	cancelDial()
	if err != nil {
		fail(1, "dial %s: %v", *sock, err)
	}
	defer conn.Close()

	out := bufio.NewWriter(os.Stdout)
	for i, m := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		var reply []byte
		err := conn.Invoke(ctx, m, reqs[i], &reply, grpc.ForceCodec(rawCodec{}))
		cancel()
		if err != nil {
			st := status.Convert(err)
			out.Flush()
			conn.Close()
			fail(1, "call %d %s: code=%s desc=%s", i+1, m, st.Code(), st.Message())
		}
		if err := writeFrame(out, reply); err != nil {
			fail(1, "write reply %d: %v", i+1, err)
		}
	}
	if err := out.Flush(); err != nil {
		fail(1, "write replies: %v", err)
	}
}

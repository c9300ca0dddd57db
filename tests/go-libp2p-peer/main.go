// go-libp2p-peer: a go-libp2p node for devmux's interop tests (tests/it/go_libp2p.rs).
// TCP, Noise and yamux only; libp2p ping and identify; /demo/echo/1.0.0 echoes bytes.
//
//	go-libp2p-peer listen        prints its multiaddr, serves until stdin closes
//	go-libp2p-peer dial ADDR     connects, identifies, pings, echoes; prints JSON
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/basic"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

const echoID = "/demo/echo/1.0.0"

func newHost() (host.Host, error) {
	priv, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	return libp2p.New(
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.Ping(true),
		libp2p.UserAgent("go-libp2p-peer/devmux-test"),
	)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go-libp2p-peer: "+format+"\n", args...)
	os.Exit(1)
}

// frame is devmux's registrar framing: uvarint(1+len) ‖ code ‖ payload.
func frame(code byte, payload []byte) []byte {
	out := binary.AppendUvarint(nil, uint64(1+len(payload)))
	out = append(out, code)
	return append(out, payload...)
}

type result struct {
	Peer      string   `json:"peer"`
	Agent     string   `json:"agent"`
	Protocols []string `json:"protocols"`
	RttMs     float64  `json:"rtt_ms"`
	EchoOk    bool     `json:"echo_ok"`
}

func dial(h host.Host, addr string) {
	info, err := peer.AddrInfoFromString(addr)
	if err != nil {
		fail("address %q: %v", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Connect(ctx, *info); err != nil {
		fail("connect: %v", err)
	}
	if bh, ok := h.(*basichost.BasicHost); ok {
		for _, c := range h.Network().ConnsToPeer(info.ID) {
			select {
			case <-bh.IDService().IdentifyWait(c):
			case <-ctx.Done():
				fail("identify: %v", ctx.Err())
			}
		}
	}
	var r result
	r.Peer = info.ID.String()
	if agent, err := h.Peerstore().Get(info.ID, "AgentVersion"); err == nil {
		r.Agent, _ = agent.(string)
	}
	protocols, err := h.Peerstore().GetProtocols(info.ID)
	if err != nil {
		fail("protocols: %v", err)
	}
	for _, p := range protocols {
		r.Protocols = append(r.Protocols, string(p))
	}
	res := <-ping.Ping(ctx, h, info.ID)
	if res.Error != nil {
		fail("ping: %v", res.Error)
	}
	r.RttMs = float64(res.RTT.Microseconds()) / 1000
	s, err := h.NewStream(ctx, info.ID, echoID)
	if err != nil {
		fail("open %s: %v", echoID, err)
	}
	payload := bytes.Repeat([]byte("go-libp2p "), 20000) // 200 kB: several yamux frames
	sent := frame(7, payload)
	if _, err := s.Write(sent); err != nil {
		fail("echo write: %v", err)
	}
	back := make([]byte, len(sent))
	if _, err := io.ReadFull(s, back); err != nil {
		fail("echo read: %v", err)
	}
	r.EchoOk = bytes.Equal(back, sent)
	_ = s.Close()
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}

func listen(h host.Host) {
	h.SetStreamHandler(echoID, func(s network.Stream) {
		_, _ = io.Copy(s, s)
		_ = s.Close()
	})
	addrs := h.Addrs()
	if len(addrs) == 0 {
		fail("no listen address")
	}
	fmt.Printf("%s/p2p/%s\n", addrs[0], h.ID())
	// Serve until the test closes our stdin.
	_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: go-libp2p-peer listen | dial ADDR")
	}
	h, err := newHost()
	if err != nil {
		fail("host: %v", err)
	}
	defer h.Close()
	switch os.Args[1] {
	case "listen":
		listen(h)
	case "dial":
		if len(os.Args) != 3 {
			fail("usage: go-libp2p-peer dial ADDR")
		}
		dial(h, os.Args[2])
	default:
		fail("unknown mode %q", os.Args[1])
	}
}

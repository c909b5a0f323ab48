package fakeslack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// writeTimeout bounds every frame write, so a stuck client cannot stall a
// delivery for long.
const writeTimeout = 5 * time.Second

// upgrader accepts slack-go's "Origin: https://api.slack.com", which
// gorilla's default same-origin check would refuse.
var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// conn is one Socket Mode WebSocket. Its handler goroutine owns the reads.
type conn struct {
	id       int
	ws       *websocket.Conn
	routable bool // guarded by Server.mu; false until hello is out and after a disconnect

	wmu  sync.Mutex // serialises data frames; gorilla allows one writer at a time
	done chan struct{}
	once sync.Once
}

// write sends one text frame.
func (c *conn) write(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()

	if err := c.ws.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// close ends the socket, which also ends its read loop and pinger.
func (c *conn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.ws.Close()
	})
}

// ping sends ping control frames until the connection closes. slack-go
// treats a socket without pings as dead.
func (c *conn) ping(interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()

	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
			// WriteControl may run concurrently with write.
			err := c.ws.WriteControl(websocket.PingMessage, []byte("fakeslack"),
				time.Now().Add(writeTimeout))
			if err != nil {
				c.close()
				return
			}
		}
	}
}

// hello is the first frame on every connection.
type hello struct {
	Type           string `json:"type"`
	NumConnections int    `json:"num_connections"`
	ConnectionInfo struct {
		AppID string `json:"app_id"`
	} `json:"connection_info"`
	DebugInfo struct {
		Host                      string `json:"host"`
		Started                   string `json:"started"`
		BuildNumber               int    `json:"build_number"`
		ApproximateConnectionTime int    `json:"approximate_connection_time"`
	} `json:"debug_info"`
}

// serveLink upgrades a Socket Mode connection opened with a ticket from
// apps.connections.open, says hello, then reads acks until the client leaves.
func (s *Server) serveLink(w http.ResponseWriter, r *http.Request) {
	if !s.takeTicket(r.URL.Query().Get("ticket")) {
		http.Error(w, "invalid or used ticket", http.StatusUnauthorized)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered the client
	}

	c := &conn{ws: ws, done: make(chan struct{})}
	if !s.admit(c) {
		_ = ws.Close()
		return
	}
	defer s.wg.Done()
	defer s.drop(c)

	frame, err := json.Marshal(s.hello(c))
	if err != nil || !s.greet(c, frame) {
		return
	}

	pinger := make(chan struct{})
	go func() {
		defer close(pinger)
		c.ping(s.cfg.pingInterval)
	}()
	s.readAcks(c)
	c.close()
	<-pinger
}

// greet sends hello and makes c routable in one step under mu: a client
// that saw hello may send commands at once, and they must be able to reach
// it, while no envelope may reach it before hello.
func (s *Server) greet(c *conn, hello []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()

	if c.write(hello) != nil {
		return false
	}
	c.routable = true
	s.notifyLocked()
	return true
}

// takeTicket consumes a ticket issued by apps.connections.open.
func (s *Server) takeTicket(ticket string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()

	ok := s.tickets[ticket]
	delete(s.tickets, ticket)
	return ok
}

// admit registers a new socket and counts its handler in wg, unless the
// server is closed. Both happen under mu so that close sees the socket.
func (s *Server) admit(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()

	if s.closed {
		return false
	}
	s.wg.Add(1)
	s.seq++
	c.id = s.seq
	s.conns = append(s.conns, c)
	return true
}

// drop forgets a closed socket.
func (s *Server) drop(c *conn) {
	c.close()

	s.mu.Lock()
	defer s.mu.Unlock()

	s.conns = slices.DeleteFunc(s.conns, func(o *conn) bool { return o == c })
	s.notifyLocked()
}

// setRoutable lets envelopes go to c, or stops them.
func (s *Server) setRoutable(c *conn, routable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()

	c.routable = routable
	s.notifyLocked()
}

// hello builds the hello frame for c.
func (s *Server) hello(c *conn) hello {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()

	h := hello{Type: "hello", NumConnections: n}
	h.ConnectionInfo.AppID = AppID
	h.DebugInfo.Host = fmt.Sprintf("fakeslack-%d", c.id)
	h.DebugInfo.Started = time.Now().UTC().Format("2006-01-02 15:04:05.000")
	h.DebugInfo.BuildNumber = 1
	h.DebugInfo.ApproximateConnectionTime = 3600
	return h
}

// readAcks records every ack the client sends until the socket fails.
// Frames that are not acks are ignored, as Slack ignores them.
func (s *Server) readAcks(c *conn) {
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}

		var ack struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(data, &ack) != nil || ack.EnvelopeID == "" {
			continue
		}
		s.recordAck(ack.EnvelopeID, ack.Payload, time.Now())
	}
}

// WaitConnected returns once some client is connected and has been sent
// hello, or the context's error when it ends first.
func (s *Server) WaitConnected(ctx context.Context) error {
	err := s.WaitFor(ctx, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()

		return slices.ContainsFunc(s.conns, func(c *conn) bool { return c.routable })
	})
	if err != nil {
		return fmt.Errorf("wait for socket mode connection: %w", err)
	}
	return nil
}

// Disconnect asks every connected client to reconnect, as Slack does before
// it recycles a connection. No envelope goes to those sockets afterwards, but
// acks arriving on them still count.
func (s *Server) Disconnect(reason string) {
	frame, _ := json.Marshal(map[string]any{
		"type":       "disconnect",
		"reason":     reason,
		"debug_info": map[string]string{"host": "fakeslack"},
	})

	s.mu.Lock()
	var targets []*conn
	for _, c := range s.conns {
		if c.routable {
			c.routable = false
			targets = append(targets, c)
		}
	}
	s.notifyLocked()
	s.mu.Unlock()

	for _, c := range targets {
		if c.write(frame) != nil {
			c.close()
		}
	}
}

// pickConnLocked returns the next routable socket in round-robin order, or
// nil and the channel that signals the next state change.
func (s *Server) pickConnLocked() (*conn, <-chan struct{}) {
	for range s.conns {
		c := s.conns[s.nextConn%len(s.conns)]
		s.nextConn++
		if c.routable {
			return c, nil
		}
	}
	return nil, s.changed
}

// send writes frame to one connected client, waiting for a connection if
// there is none. register runs under mu with the send time just before the
// write, so that an ack cannot arrive before the envelope is known.
func (s *Server) send(ctx context.Context, frame []byte, register func(time.Time)) error {
	for {
		s.mu.Lock()
		c, changed := s.pickConnLocked()
		if c != nil {
			register(time.Now())
		}
		s.mu.Unlock()

		if c == nil {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return fmt.Errorf("wait for socket mode connection: %w", ctx.Err())
			case <-s.ctx.Done():
				return ErrClosed
			}
		}

		if err := c.write(frame); err != nil {
			c.close() // a broken socket; try the next one
			s.setRoutable(c, false)
			continue
		}
		return nil
	}
}

// Connections returns how many clients are connected and were sent hello.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.conns {
		if c.routable {
			n++
		}
	}
	return n
}

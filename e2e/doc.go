// Package e2e holds taskbot's end-to-end tests: taskbot serve runs
// in-process against the Slack stand-in (the real slack-go client over a real
// websocket), a real redis-server and the real Docker engine, and the tests
// assert on what it posted in Slack and wrote to the audit log.
package e2e

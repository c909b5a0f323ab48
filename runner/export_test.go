package runner

import "time"

// SetPullTimeout changes how long d may pull an image, so that a test of a
// hanging registry need not wait the default.
func SetPullTimeout(d *Docker, timeout time.Duration) { d.pullTimeout = timeout }

package policy

import "time"

// SetTimeout changes how long e may take to evaluate, so that tests of a
// slow policy need not wait DefaultTimeout.
func SetTimeout(e *Engine, d time.Duration) { e.timeout = d }

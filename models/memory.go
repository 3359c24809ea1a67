package models

import "runtime/debug"

// releaseMemory hands memory that is free but still mapped back to the
// operating system: the Go heap's, and the C allocator's (see trimCHeap).
// It is called when a session closes (every generation, forward pass and
// sweep batch) and after the weights are loaded.
func releaseMemory() {
	debug.FreeOSMemory()
	trimCHeap()
}

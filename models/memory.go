package models

import "runtime/debug"

// releaseMemory hands memory that is free but still mapped back to the
// operating system: the Go heap's, and the C allocator's (see trimCHeap).
// It is called after each generation, forward pass and sweep, so memory
// freed there does not pile up in the resident set across batches.
func releaseMemory() {
	debug.FreeOSMemory()
	trimCHeap()
}

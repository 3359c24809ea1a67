//go:build linux && cgo

package models

// #include <stdlib.h>
// #ifdef __GLIBC__
// #include <malloc.h>
// #endif
// static void rk_trim(void) {
// #ifdef __GLIBC__
// 	malloc_trim(0);
// #endif
// }
import "C"

// trimCHeap returns the C heap's free pages to the system. XLA compiles and
// runs programs on its own threads, each with a glibc malloc arena; what they
// free stays mapped until trimmed, which grew the resident set by about
// 100 MB per compiled shape.
func trimCHeap() { C.rk_trim() }

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

// trimCHeap returns the C heap's free pages to the system. What XLA frees
// after compiling and running a program stays mapped in glibc's arenas until
// trimmed: without it, each generation with new shapes left 90-200 MB more
// resident, against 30-60 MB with it (measured on the bundled model).
func trimCHeap() { C.rk_trim() }

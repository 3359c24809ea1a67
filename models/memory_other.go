//go:build !linux || !cgo

package models

// trimCHeap: only glibc (Linux with cgo) keeps freed memory mapped this way.
func trimCHeap() {}

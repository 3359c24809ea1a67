//go:build !amd64

package avx

const hasAVX = false

func vzeroupper() {}

package avx

import "golang.org/x/sys/cpu"

var hasAVX = cpu.X86.HasAVX

func vzeroupper() // avx_amd64.s

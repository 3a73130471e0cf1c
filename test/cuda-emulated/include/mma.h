// The CUDA emulation (test/cuda-emulated): stands in for the toolkit header of this name.
#pragma once
#include "siglip_emu/emu.h"

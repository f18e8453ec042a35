// One registration function per op family; each lives in csrc/bindings/<family>.cpp.
#pragma once

#include <pybind11/pybind11.h>

namespace kiln::bind {

void bind_runtime(pybind11::module_& m);
void bind_conv(pybind11::module_& m);
void bind_pool(pybind11::module_& m);
void bind_norm(pybind11::module_& m);
void bind_linear(pybind11::module_& m);
void bind_activation(pybind11::module_& m);
void bind_loss(pybind11::module_& m);
void bind_dropout(pybind11::module_& m);
void bind_augment(pybind11::module_& m);
void bind_optim(pybind11::module_& m);
void bind_resample(pybind11::module_& m);
void bind_tape(pybind11::module_& m);

}  // namespace kiln::bind

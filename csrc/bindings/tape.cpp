// Function.apply, the hot path of every differentiable op, in C: recording an op on
// the autograd tape (kiln/autograd/function.py) costs what PyTorch's dispatcher
// costs, not a microsecond of Python bookkeeping per call.
//
//   outputs = cls.apply(*args)
//     device   the one device of the Tensor arguments (CPU when there are none);
//              two different devices raise RuntimeError naming the op and both
//     ctx      a Context with needs_input_grad = (arg.requires_grad or False, ...),
//              backend = backends[device.type], saved_tensors = (),
//              _non_differentiable = frozenset()
//     result   cls.forward(ctx, *(arg._data if Tensor else arg))
//              one array, or a tuple of arrays (anything else, e.g. a NumPy scalar,
//              made one by backend.xp.asarray)
//     outputs  a new Tensor around each array, on device
//     views    an output whose array shares its root storage (ndarray.base, followed to
//              the end) with a Tensor argument's array shares that argument's version
//              counter (made when missing) and is marked a view of that argument's base
//              (the argument itself, or its base when it is a view):
//              output._view = (base, counter.value), the version at which the output's
//              history is that of a view of base's history
//     stale    before an argument is read, a view whose storage changed in place since
//              its history was made (counter.value != _view[1]) is handed to the
//              registered refresh(tensor), which re-derives its history from its base's
//              current one (kiln/tensor.py; PyTorch regenerates a view's grad_fn so)
//     tape     when some argument requires grad and grad mode is on:
//              node = Node(cls, ctx, [edge per argument], [(array.shape, array.dtype)
//                          per output])   (made here)
//              edge: None (the argument does not require grad), the argument itself (a
//              leaf), or (arg._node, arg._output_index) taken now (a non-leaf: an
//              in-place op that later rebases arg does not move this edge);
//              each output not marked non-differentiable gets
//              _node = node, _output_index = i, requires_grad = True;
//              ctx._saved_versions = (k, counter, counter.value, ...) for each array
//              ctx.saved_tensors[k] that is the array of a Tensor argument or output
//              (its version counter made when missing), for backward to check that
//              no in-place op changed it since (else ())
//     observe  observer(cls, args, outputs) for each of apply_observers
//   returns the one output, or the tuple of outputs
//
// Python hands this file its classes and state once (_tape_bind, _tape_bind_tensor).
// Tensor's, Context's and Node's fields are __slots__, read and written at their fixed
// offsets; all three are made with tp_alloc, as object.__new__ makes them, and filled here
// (Python's __init__ is not run).
#include <Python.h>
#include <structmember.h>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bindings/families.h"

namespace kiln::bind {
namespace {

// kiln._C._VersionCounter (kiln.autograd.function.VersionCounter): how many in-place ops have
// changed a storage, shared by a tensor, its views and detach(). A plain C object (no GC,
// no dict): apply makes one for each saved output, so it must cost next to nothing.
struct VersionCounter {
  PyObject_HEAD
  Py_ssize_t value;
};

PyMemberDef counter_members[] = {
    {"value", T_PYSSIZET, offsetof(VersionCounter, value), 0,
     "in-place changes of the storage so far"},
    {nullptr, 0, 0, 0, nullptr}};

// A copy (deepcopy, pickle) is a fresh counter: a copied tensor has storage of its own.
PyObject* counter_reduce(PyObject* self, PyObject*) {
  return Py_BuildValue("(O())", reinterpret_cast<PyObject*>(Py_TYPE(self)));
}

PyMethodDef counter_methods[] = {
    {"__reduce__", counter_reduce, METH_NOARGS, "A fresh counter (value 0)."},
    {nullptr, nullptr, 0, nullptr}};

PyType_Slot counter_slots[] = {
    {Py_tp_doc, const_cast<char*>("How many in-place ops have changed a storage (shared by a "
                                  "tensor, its views and detach()).")},
    {Py_tp_members, counter_members},
    {Py_tp_methods, counter_methods},
    {Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)},
    {0, nullptr}};

PyType_Spec counter_spec = {"kiln._C._VersionCounter", sizeof(VersionCounter), 0,
                            Py_TPFLAGS_DEFAULT, counter_slots};

PyTypeObject* counter_type = nullptr;  // made from counter_spec by bind_tape

// What Python registered: borrowed forever (module-level objects of kiln).
struct Tape {
  PyTypeObject* context = nullptr;    // kiln.autograd.function.Context
  PyTypeObject* node_type = nullptr; // kiln.autograd.function.Node
  PyObject* backends = nullptr;      // {device type: Backend}
  PyObject* grad_state = nullptr;    // grad_mode's thread-local; .enabled
  PyObject* observers = nullptr;     // apply_observers (a list, mutated in place)
  PyObject* cpu = nullptr;           // kiln.device('cpu')
  PyObject* no_ids = nullptr;        // frozenset(): no output marked non-differentiable
  PyObject* empty = nullptr;         // (): nothing saved for backward
  PyTypeObject* ndarray = nullptr;   // numpy.ndarray: results of this type need no asarray
  PyTypeObject* tensor = nullptr;    // kiln.Tensor
  PyObject* refresh = nullptr;       // refresh(view): re-derives a stale view's history
  // Byte offsets of Tensor's slots.
  Py_ssize_t data = 0, device = 0, requires_grad = 0, grad = 0, node = 0, output_index = 0,
             hooks = 0, version = 0, view = 0;
  // Byte offsets of Context's and Node's slots.
  Py_ssize_t needs_input_grad = 0, backend = 0, saved_tensors = 0, non_differentiable = 0,
             saved_versions = 0;
  Py_ssize_t node_function = 0, node_ctx = 0, node_inputs = 0, node_output_meta = 0;
};
Tape tape;

// Interned attribute names, made once.
PyObject *s_forward, *s_enabled, *s_type, *s_shape, *s_dtype, *s_name, *s_lstrip, *s_underscore,
    *s_xp, *s_asarray;

inline PyObject*& slot(PyObject* obj, Py_ssize_t offset) {
  return *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(obj) + offset);
}

Py_ssize_t slot_offset(PyTypeObject* type, const char* name) {
  PyObject* descr = PyDict_GetItemString(type->tp_dict, name);  // borrowed
  if (descr == nullptr || Py_TYPE(descr) != &PyMemberDescr_Type) {
    PyErr_Format(PyExc_TypeError, "tape_bind: %s.%s is not a __slots__ field", type->tp_name,
                 name);
    return -1;
  }
  PyMemberDef* member = reinterpret_cast<PyMemberDescrObject*>(descr)->d_member;
  if (member->type != T_OBJECT_EX) {
    PyErr_Format(PyExc_TypeError, "tape_bind: %s.%s is not an object slot", type->tp_name,
                 name);
    return -1;
  }
  return member->offset;
}

// A new Tensor around `array` (a new reference is taken) on `device`.
PyObject* wrap(PyObject* array, PyObject* device) {
  PyObject* t = tape.tensor->tp_alloc(tape.tensor, 0);
  if (t == nullptr) return nullptr;
  Py_INCREF(array);
  slot(t, tape.data) = array;
  Py_INCREF(device);
  slot(t, tape.device) = device;
  Py_INCREF(Py_None);
  slot(t, tape.grad) = Py_None;
  Py_INCREF(Py_None);
  slot(t, tape.node) = Py_None;
  slot(t, tape.output_index) = PyLong_FromLong(0);  // a cached small int: cannot fail
  Py_INCREF(Py_None);
  slot(t, tape.hooks) = Py_None;
  Py_INCREF(Py_False);
  slot(t, tape.requires_grad) = Py_False;
  Py_INCREF(Py_None);
  slot(t, tape.version) = Py_None;
  Py_INCREF(Py_None);
  slot(t, tape.view) = Py_None;
  return t;
}

void set_slot(PyObject* obj, Py_ssize_t offset, PyObject* value) {
  Py_INCREF(value);
  Py_XSETREF(slot(obj, offset), value);
}

// The array that owns `array`'s memory (its .base chain followed while it is an
// ndarray; borrowed), or nullptr when `array` is not an ndarray (another backend's).
PyObject* storage_root(PyObject* array) {
  if (!PyObject_TypeCheck(array, tape.ndarray)) return nullptr;
  for (;;) {
    PyObject* base = pybind11::detail::array_proxy(array)->base;
    if (base == nullptr || !PyObject_TypeCheck(base, tape.ndarray)) return array;
    array = base;
  }
}

// `tensor`'s version counter (borrowed), made (value 0) when it has none yet.
PyObject* version_counter(PyObject* tensor) {
  PyObject* counter = slot(tensor, tape.version);
  if (counter != nullptr && counter != Py_None) return counter;
  counter = counter_type->tp_alloc(counter_type, 0);  // value 0
  if (counter == nullptr) return nullptr;
  Py_XSETREF(slot(tensor, tape.version), counter);  // the reference moves in
  return counter;
}

// Outputs that are views of a Tensor argument's storage share its version counter and
// are marked views of its base (see the header). Returns 0, or -1 with an exception set.
int share_versions(PyObject* const* args, PyObject* const* call, Py_ssize_t nargs,
                   PyObject* const* arrays, PyObject* const* outputs, Py_ssize_t nout) {
  for (Py_ssize_t j = 0; j < nout; ++j) {
    PyObject* root = storage_root(arrays[j]);
    if (root == nullptr) continue;
    for (Py_ssize_t i = 0; i < nargs; ++i) {
      if (!PyObject_TypeCheck(args[i], tape.tensor) || storage_root(call[i + 1]) != root) continue;
      PyObject* counter = version_counter(args[i]);
      if (counter == nullptr) return -1;
      set_slot(outputs[j], tape.version, counter);
      PyObject* of = slot(args[i], tape.view);
      PyObject* base = of == Py_None ? args[i] : PyTuple_GET_ITEM(of, 0);
      PyObject* version = PyLong_FromSsize_t(reinterpret_cast<VersionCounter*>(counter)->value);
      PyObject* view = version ? PyTuple_Pack(2, base, version) : nullptr;
      Py_XDECREF(version);
      if (view == nullptr) return -1;
      Py_XSETREF(slot(outputs[j], tape.view), view);  // the reference moves in
      break;
    }
  }
  return 0;
}

// ctx._saved_versions for the arrays of ctx.saved_tensors that are Tensors' arrays
// (see the header). Returns 0, or -1 with an exception set.
int save_versions(PyObject* ctx, PyObject* const* args, PyObject* const* call, Py_ssize_t nargs,
                  PyObject* const* arrays, PyObject* const* outputs, Py_ssize_t nout) {
  PyObject* saved = slot(ctx, tape.saved_tensors);
  if (saved == nullptr || !PyTuple_Check(saved)) return 0;
  // The Tensor whose array each saved item is (nullptr: none), found first, so that no
  // tuple is made for an op that saves no tensor's array.
  const Py_ssize_t nsaved = PyTuple_GET_SIZE(saved);
  constexpr Py_ssize_t kStack = 8;
  PyObject* owner_stack[kStack];
  PyObject** owners = owner_stack;
  if (nsaved > kStack) {
    owners = static_cast<PyObject**>(PyMem_Malloc(sizeof(PyObject*) * nsaved));
    if (owners == nullptr) {
      PyErr_NoMemory();
      return -1;
    }
  }
  Py_ssize_t found = 0;
  for (Py_ssize_t k = 0; k < nsaved; ++k) {
    PyObject* array = PyTuple_GET_ITEM(saved, k);
    PyObject* owner = nullptr;
    for (Py_ssize_t i = 0; i < nargs && owner == nullptr; ++i)
      if (call[i + 1] == array && PyObject_TypeCheck(args[i], tape.tensor)) owner = args[i];
    for (Py_ssize_t j = 0; j < nout && owner == nullptr; ++j)
      if (arrays[j] == array) owner = outputs[j];
    owners[k] = owner;
    found += owner != nullptr;
  }
  int status = 0;
  if (found > 0) {
    PyObject* entries = PyTuple_New(3 * found);
    status = entries == nullptr ? -1 : 0;
    for (Py_ssize_t k = 0, n = 0; status == 0 && k < nsaved; ++k) {
      if (owners[k] == nullptr) continue;
      PyObject* counter = version_counter(owners[k]);
      PyObject* index = counter ? PyLong_FromSsize_t(k) : nullptr;
      PyObject* value =
          index ? PyLong_FromSsize_t(reinterpret_cast<VersionCounter*>(counter)->value) : nullptr;
      if (value == nullptr) {
        Py_XDECREF(index);
        status = -1;
        break;
      }
      Py_INCREF(counter);
      PyTuple_SET_ITEM(entries, n, index);
      PyTuple_SET_ITEM(entries, n + 1, counter);
      PyTuple_SET_ITEM(entries, n + 2, value);
      n += 3;
    }
    if (status == 0) {
      Py_XSETREF(slot(ctx, tape.saved_versions), entries);
    } else {
      Py_XDECREF(entries);
    }
  }
  if (owners != owner_stack) PyMem_Free(owners);
  return status;
}

// Hands `tensor` (a view: _view is a (base, version) tuple) to the registered refresh
// when its storage changed in place since its history was made. Returns 0, or -1 with an
// exception set.
int refresh_if_stale(PyObject* tensor) {
  PyObject* view = slot(tensor, tape.view);
  PyObject* counter = slot(tensor, tape.version);
  if (!PyTuple_Check(view) || PyTuple_GET_SIZE(view) != 2 || Py_TYPE(counter) != counter_type) {
    PyErr_SetString(PyExc_TypeError, "Function.apply: a view's _view must be (base, version) "
                                     "and its counter a VersionCounter");
    return -1;
  }
  Py_ssize_t then = PyLong_AsSsize_t(PyTuple_GET_ITEM(view, 1));
  if (then == -1 && PyErr_Occurred()) return -1;
  if (reinterpret_cast<VersionCounter*>(counter)->value == then) return 0;
  PyObject* r = PyObject_CallOneArg(tape.refresh, tensor);
  if (r == nullptr) return -1;
  Py_DECREF(r);
  return 0;
}

// A forward's result that is not an ndarray (a NumPy scalar, a Python float, an array
// of another device) as an array of the op's device: backend.xp.asarray(result).
PyObject* as_array(PyObject* backend, PyObject* result) {
  PyObject* xp = PyObject_GetAttr(backend, s_xp);
  if (xp == nullptr) return nullptr;
  PyObject* array = PyObject_CallMethodOneArg(xp, s_asarray, result);
  Py_DECREF(xp);
  return array;
}

// RuntimeError "<op>: expected all tensors to be on the same device, ..." (op: the
// Function's class name without leading underscores, as the Python error said).
void mixed_devices(PyObject* cls, PyObject* first, PyObject* second) {
  PyObject* name = PyObject_GetAttr(cls, s_name);
  PyObject* op = name ? PyObject_CallMethodOneArg(name, s_lstrip, s_underscore) : nullptr;
  Py_XDECREF(name);
  if (op == nullptr) return;
  PyErr_Format(PyExc_RuntimeError,
               "%U: expected all tensors to be on the same device, but found at least two "
               "devices, %S and %S",
               op, first, second);
  Py_DECREF(op);
}

// Links the outputs to a new Node when the op is recorded. `result` is what forward
// returned (ctx.mark_non_differentiable names its arrays), `arrays` the ndarrays made
// of it. Returns 0, or -1 with an exception set.
int record(PyObject* cls, PyObject* ctx, PyObject* const* args, PyObject* const* call,
           Py_ssize_t nargs, PyObject* const* needs, PyObject* result,
           PyObject* const* arrays, PyObject* const* outputs, Py_ssize_t nout) {
  PyObject* inputs = PyList_New(nargs);
  PyObject* meta = PyList_New(nout);
  PyObject* node = nullptr;
  PyObject* skip = nullptr;
  int status = -1;
  if (inputs == nullptr || meta == nullptr) goto done;
  for (Py_ssize_t i = 0; i < nargs; ++i) {
    PyObject* edge = Py_None;
    if (needs[i] == Py_True) {
      PyObject* from = slot(args[i], tape.node);
      edge = from == Py_None ? args[i] : PyTuple_Pack(2, from, slot(args[i], tape.output_index));
      if (edge == nullptr) goto done;
      if (from == Py_None) Py_INCREF(edge);
    } else {
      Py_INCREF(edge);
    }
    PyList_SET_ITEM(inputs, i, edge);
  }
  for (Py_ssize_t i = 0; i < nout; ++i) {
    PyObject* shape = PyObject_GetAttr(arrays[i], s_shape);
    PyObject* dtype = shape ? PyObject_GetAttr(arrays[i], s_dtype) : nullptr;
    PyObject* pair = dtype ? PyTuple_Pack(2, shape, dtype) : nullptr;
    Py_XDECREF(shape);
    Py_XDECREF(dtype);
    if (pair == nullptr) goto done;
    PyList_SET_ITEM(meta, i, pair);
  }
  node = tape.node_type->tp_alloc(tape.node_type, 0);
  if (node == nullptr) goto done;
  set_slot(node, tape.node_function, cls);
  set_slot(node, tape.node_ctx, ctx);
  set_slot(node, tape.node_inputs, inputs);
  set_slot(node, tape.node_output_meta, meta);
  skip = slot(ctx, tape.non_differentiable);  // a frozenset of id(array)
  Py_XINCREF(skip);
  if (skip == nullptr || !PyAnySet_Check(skip)) {
    PyErr_SetString(PyExc_TypeError, "Function.apply: ctx._non_differentiable must be a set");
    goto done;
  }
  for (Py_ssize_t i = 0; i < nout; ++i) {
    if (PySet_GET_SIZE(skip) > 0) {
      PyObject* id =
          PyLong_FromVoidPtr(PyTuple_Check(result) ? PyTuple_GET_ITEM(result, i) : result);
      if (id == nullptr) goto done;
      int found = PySet_Contains(skip, id);
      Py_DECREF(id);
      if (found < 0) goto done;
      if (found) continue;
    }
    set_slot(outputs[i], tape.node, node);
    PyObject* index = PyLong_FromSsize_t(i);
    if (index == nullptr) goto done;
    Py_XSETREF(slot(outputs[i], tape.output_index), index);
    set_slot(outputs[i], tape.requires_grad, Py_True);
  }
  if (save_versions(ctx, args, call, nargs, arrays, outputs, nout) < 0) goto done;
  status = 0;
done:
  Py_XDECREF(inputs);
  Py_XDECREF(meta);
  Py_XDECREF(node);
  Py_XDECREF(skip);
  return status;
}

// Function.apply(cls, *args), bound as a classmethod.
PyObject* tape_apply(PyObject*, PyObject* const* argv, Py_ssize_t argc) {
  if (tape.tensor == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "Function.apply: kiln.Tensor is not registered yet");
    return nullptr;
  }
  if (argc < 1) {
    PyErr_SetString(PyExc_TypeError, "Function.apply: expected the Function class");
    return nullptr;
  }
  PyObject* cls = argv[0];
  PyObject* const* args = argv + 1;
  const Py_ssize_t nargs = argc - 1;

  // Slot 0 of `call` is the context; forward receives call[0..nargs].
  constexpr Py_ssize_t kStack = 12;
  PyObject* call_stack[kStack + 1];
  PyObject* needs_stack[kStack];
  PyObject** call = call_stack;
  PyObject** needs = needs_stack;
  if (nargs > kStack) {
    call = static_cast<PyObject**>(PyMem_Malloc(sizeof(PyObject*) * (2 * nargs + 1)));
    if (call == nullptr) return PyErr_NoMemory();
    needs = call + nargs + 1;
  }
  PyObject* device = nullptr;  // borrowed
  bool any_needs = false;
  PyObject *ctx = nullptr, *forward = nullptr, *result = nullptr, *returned = nullptr;
  PyObject* out_stack[4];
  PyObject* arr_stack[4];
  PyObject** outputs = out_stack;
  PyObject** arrays = arr_stack;  // new references
  Py_ssize_t nout = 0, made = 0, converted = 0;
  bool multiple = false;

  for (Py_ssize_t i = 0; i < nargs; ++i) {
    PyObject* a = args[i];
    if (PyObject_TypeCheck(a, tape.tensor)) {
      if (slot(a, tape.view) != Py_None && refresh_if_stale(a) < 0) goto fail;
      call[i + 1] = slot(a, tape.data);
      PyObject* rg = slot(a, tape.requires_grad);
      needs[i] = rg == Py_True ? Py_True : Py_False;
      any_needs |= rg == Py_True;
      PyObject* where = slot(a, tape.device);
      if (device == nullptr) {
        device = where;
      } else if (where != device) {
        int same = PyObject_RichCompareBool(where, device, Py_EQ);
        if (same < 0) goto fail;
        if (!same) {
          mixed_devices(cls, device, where);
          goto fail;
        }
      }
    } else {
      call[i + 1] = a;
      needs[i] = Py_False;
    }
  }
  if (device == nullptr) device = tape.cpu;

  {
    PyObject* type = PyObject_GetAttr(device, s_type);
    if (type == nullptr) goto fail;
    PyObject* backend = PyDict_GetItemWithError(tape.backends, type);  // borrowed
    Py_DECREF(type);
    if (backend == nullptr && PyErr_Occurred()) goto fail;
    PyObject* needs_tuple = PyTuple_New(nargs);
    if (needs_tuple == nullptr) goto fail;
    for (Py_ssize_t i = 0; i < nargs; ++i) {
      Py_INCREF(needs[i]);
      PyTuple_SET_ITEM(needs_tuple, i, needs[i]);
    }
    ctx = tape.context->tp_alloc(tape.context, 0);
    if (ctx == nullptr) {
      Py_DECREF(needs_tuple);
      goto fail;
    }
    slot(ctx, tape.needs_input_grad) = needs_tuple;  // the reference moves in
    set_slot(ctx, tape.backend, backend ? backend : Py_None);
    set_slot(ctx, tape.saved_tensors, tape.empty);
    set_slot(ctx, tape.non_differentiable, tape.no_ids);
    set_slot(ctx, tape.saved_versions, tape.empty);
  }

  forward = PyObject_GetAttr(cls, s_forward);
  if (forward == nullptr) goto fail;
  call[0] = ctx;
  result = PyObject_Vectorcall(forward, call, nargs + 1, nullptr);
  if (result == nullptr) goto fail;

  multiple = PyTuple_Check(result);
  nout = multiple ? PyTuple_GET_SIZE(result) : 1;
  if (nout > 4) {
    outputs = static_cast<PyObject**>(PyMem_Malloc(sizeof(PyObject*) * 2 * nout));
    if (outputs == nullptr) {
      PyErr_NoMemory();
      goto fail;
    }
    arrays = outputs + nout;
  }
  for (; converted < nout; ++converted) {
    PyObject* r = multiple ? PyTuple_GET_ITEM(result, converted) : result;
    if (Py_TYPE(r) == tape.ndarray) {
      Py_INCREF(r);
      arrays[converted] = r;
    } else {
      arrays[converted] = as_array(slot(ctx, tape.backend), r);
      if (arrays[converted] == nullptr) goto fail;
    }
  }
  for (; made < nout; ++made) {
    outputs[made] = wrap(arrays[made], device);
    if (outputs[made] == nullptr) goto fail;
  }
  if (share_versions(args, call, nargs, arrays, outputs, nout) < 0) goto fail;

  if (any_needs) {
    PyObject* enabled = PyObject_GetAttr(tape.grad_state, s_enabled);
    if (enabled == nullptr) goto fail;
    int on = PyObject_IsTrue(enabled);
    Py_DECREF(enabled);
    if (on < 0) goto fail;
    if (on && record(cls, ctx, args, call, nargs, needs, result, arrays, outputs, nout) < 0)
      goto fail;
  }

  if (multiple || PyList_GET_SIZE(tape.observers) > 0) {
    returned = PyTuple_New(nout);
    if (returned == nullptr) goto fail;
    for (Py_ssize_t i = 0; i < nout; ++i) {
      Py_INCREF(outputs[i]);
      PyTuple_SET_ITEM(returned, i, outputs[i]);
    }
  }
  if (PyList_GET_SIZE(tape.observers) > 0) {
    PyObject* observed = PyTuple_New(nargs);
    if (observed == nullptr) goto fail;
    for (Py_ssize_t i = 0; i < nargs; ++i) {
      Py_INCREF(args[i]);
      PyTuple_SET_ITEM(observed, i, args[i]);
    }
    // A copy: an observer may remove itself while being called.
    PyObject* observers = PyList_GetSlice(tape.observers, 0, PY_SSIZE_T_MAX);
    for (Py_ssize_t i = 0; observers && i < PyList_GET_SIZE(observers); ++i) {
      PyObject* observe_args[] = {cls, observed, returned};
      PyObject* r = PyObject_Vectorcall(PyList_GET_ITEM(observers, i), observe_args, 3, nullptr);
      if (r == nullptr) {
        Py_CLEAR(observers);
        break;
      }
      Py_DECREF(r);
    }
    Py_DECREF(observed);
    if (observers == nullptr) goto fail;
    Py_DECREF(observers);
  }
  if (!multiple) {
    Py_XDECREF(returned);
    returned = outputs[0];
    Py_INCREF(returned);
  }
  goto done;

fail:
  Py_CLEAR(returned);
done:
  for (Py_ssize_t i = 0; i < made; ++i) Py_DECREF(outputs[i]);
  for (Py_ssize_t i = 0; i < converted; ++i) Py_DECREF(arrays[i]);
  if (outputs != out_stack) PyMem_Free(outputs);
  if (call != call_stack) PyMem_Free(call);
  Py_XDECREF(result);
  Py_XDECREF(forward);
  Py_XDECREF(ctx);
  return returned;
}

// _tape_moved_version(entries): the position in `entries` (ctx._saved_versions: k,
// counter, version, ...) of the first counter whose value is no longer the version
// recorded, or -1: the engine's check before each backward, so cheap when nothing moved
// (one integer comparison per saved tensor).
PyObject* tape_moved_version(PyObject*, PyObject* entries) {
  if (!PyTuple_Check(entries) || PyTuple_GET_SIZE(entries) % 3 != 0) {
    PyErr_SetString(PyExc_TypeError, "_tape_moved_version: expected ctx._saved_versions");
    return nullptr;
  }
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(entries); i += 3) {
    PyObject* counter = PyTuple_GET_ITEM(entries, i + 1);
    if (Py_TYPE(counter) != counter_type) {
      PyErr_SetString(PyExc_TypeError, "_tape_moved_version: expected VersionCounter entries");
      return nullptr;
    }
    Py_ssize_t then = PyLong_AsSsize_t(PyTuple_GET_ITEM(entries, i + 2));
    if (then == -1 && PyErr_Occurred()) return nullptr;
    if (reinterpret_cast<VersionCounter*>(counter)->value != then) return PyLong_FromSsize_t(i);
  }
  return PyLong_FromLong(-1);
}

// Byte offsets of `type`'s slots `names`, into `offsets`. Returns 0, or -1 with an
// exception set.
template <size_t N>
int slot_offsets(PyTypeObject* type, const char* const (&names)[N],
                 Py_ssize_t* const (&offsets)[N]) {
  for (size_t i = 0; i < N; ++i) {
    *offsets[i] = slot_offset(type, names[i]);
    if (*offsets[i] < 0) return -1;
  }
  return 0;
}

// tape_bind(Context, Node, backends, grad_state, observers, cpu, numpy.ndarray): the
// tape's classes and state, from kiln.autograd.function.
PyObject* tape_bind(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 7 || !PyType_Check(args[0]) || !PyType_Check(args[1]) || !PyDict_Check(args[2]) ||
      !PyList_Check(args[4]) || !PyType_Check(args[6])) {
    PyErr_SetString(PyExc_TypeError,
                    "tape_bind(Context, Node, backends: dict, grad_state, observers: list, "
                    "cpu, ndarray)");
    return nullptr;
  }
  auto* context = reinterpret_cast<PyTypeObject*>(args[0]);
  if (slot_offsets(context,
                   {"needs_input_grad", "backend", "saved_tensors", "_non_differentiable",
                    "_saved_versions"},
                   {&tape.needs_input_grad, &tape.backend, &tape.saved_tensors,
                    &tape.non_differentiable, &tape.saved_versions}) < 0)
    return nullptr;
  if (slot_offsets(reinterpret_cast<PyTypeObject*>(args[1]),
                   {"function", "ctx", "inputs", "output_meta"},
                   {&tape.node_function, &tape.node_ctx, &tape.node_inputs,
                    &tape.node_output_meta}) < 0)
    return nullptr;
  if (tape.empty == nullptr) {
    tape.empty = PyTuple_New(0);
    tape.no_ids = PyFrozenSet_New(nullptr);
    if (tape.empty == nullptr || tape.no_ids == nullptr) return nullptr;
  }
  PyObject** fields[] = {reinterpret_cast<PyObject**>(&tape.context),
                         reinterpret_cast<PyObject**>(&tape.node_type),
                         &tape.backends, &tape.grad_state, &tape.observers, &tape.cpu,
                         reinterpret_cast<PyObject**>(&tape.ndarray)};
  for (int i = 0; i < 7; ++i) {
    Py_INCREF(args[i]);
    Py_XSETREF(*fields[i], args[i]);
  }
  Py_RETURN_NONE;
}

// tape_bind_tensor(Tensor, refresh): the class Function.apply wraps outputs in, its slots,
// and the function that re-derives a stale view's history.
PyObject* tape_bind_tensor(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyType_Check(args[0]) || !PyCallable_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "tape_bind_tensor(Tensor, refresh)");
    return nullptr;
  }
  auto* t = reinterpret_cast<PyTypeObject*>(args[0]);
  if (slot_offsets(t,
                   {"_data", "_device", "_requires_grad", "_grad", "_node", "_output_index",
                    "_post_accumulate_grad_hooks", "_version_counter", "_view"},
                   {&tape.data, &tape.device, &tape.requires_grad, &tape.grad, &tape.node,
                    &tape.output_index, &tape.hooks, &tape.version, &tape.view}) < 0)
    return nullptr;
  Py_INCREF(args[0]);
  Py_XSETREF(tape.tensor, t);
  Py_INCREF(args[1]);
  Py_XSETREF(tape.refresh, args[1]);
  Py_RETURN_NONE;
}

PyMethodDef tape_methods[] = {
    {"_tape_apply", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(tape_apply)),
     METH_FASTCALL, "Function.apply(cls, *args): run cls.forward and record it on the tape."},
    {"_tape_bind", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(tape_bind)),
     METH_FASTCALL, "Registers the autograd tape's classes and state (kiln.autograd)."},
    {"_tape_moved_version", tape_moved_version, METH_O,
     "The position of the first saved version that moved in ctx._saved_versions, or -1."},
    {"_tape_bind_tensor",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(tape_bind_tensor)),
     METH_FASTCALL,
     "Registers kiln.Tensor, the class Function.apply wraps outputs in, and the refresh "
     "of stale views."},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

void bind_tape(pybind11::module_& m) {
  const char* names[] = {"forward", "enabled", "type", "shape", "dtype", "__name__", "lstrip",
                         "_",       "xp",      "asarray"};
  PyObject** interned[] = {&s_forward, &s_enabled, &s_type,   &s_shape,      &s_dtype,
                           &s_name,    &s_lstrip,  &s_underscore, &s_xp, &s_asarray};
  for (int i = 0; i < 10; ++i) {
    *interned[i] = PyUnicode_InternFromString(names[i]);
    if (*interned[i] == nullptr) throw pybind11::error_already_set();
  }
  if (PyModule_AddFunctions(m.ptr(), tape_methods) < 0) throw pybind11::error_already_set();
  counter_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&counter_spec));
  if (counter_type == nullptr) throw pybind11::error_already_set();
  Py_INCREF(counter_type);  // one reference kept here, one given to the module
  if (PyModule_AddObject(m.ptr(), "_VersionCounter", reinterpret_cast<PyObject*>(counter_type)) <
      0) {
    Py_DECREF(counter_type);
    throw pybind11::error_already_set();
  }
}

}  // namespace kiln::bind

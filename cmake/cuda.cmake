# The CUDA backend: kernels in csrc/cuda (nvcc) and their bindings in
# csrc/bindings/cuda, built into the extension kiln._C_cuda. kiln.cuda imports it only
# when asked, so a CPU machine never loads CUDA's libraries.
#
# KILN_CUDA=AUTO (the default) builds it when a CUDA compiler is found: CUDACXX, nvcc
# on the PATH or in /usr/local/cuda, or the toolkit of NVIDIA's Python wheels
# (`pip install "kiln[cuda-build]"`, found by cmake/cuda_wheels.py). ON fails without
# one; OFF never builds it. Architectures: sm_90 (H100/H200) and sm_80 (A100) unless
# CMAKE_CUDA_ARCHITECTURES says otherwise. The CUDA runtime is linked statically
# (only the driver is needed at run time); cuBLAS dynamically, from the toolkit or the
# nvidia-cublas wheel (its folder on the extension's run path).
if(KILN_CUDA STREQUAL "OFF")
  return()
endif()

execute_process(
  COMMAND "${Python_EXECUTABLE}" "${CMAKE_CURRENT_SOURCE_DIR}/cmake/cuda_wheels.py"
  OUTPUT_VARIABLE _kiln_wheels OUTPUT_STRIP_TRAILING_WHITESPACE)
string(REPLACE "\n" ";" _kiln_wheels "${_kiln_wheels}")
list(GET _kiln_wheels 0 KILN_CUDA_WHEEL_ROOT)
list(GET _kiln_wheels 1 KILN_CUDNN_ROOT)
list(GET _kiln_wheels 2 KILN_CUBLAS_WHEEL_ROOT)

if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
  find_program(KILN_SYSTEM_NVCC nvcc PATHS /usr/local/cuda/bin)
  if(NOT KILN_SYSTEM_NVCC AND KILN_CUDA_WHEEL_ROOT)
    set(ENV{CUDACXX} "${KILN_CUDA_WHEEL_ROOT}/bin/nvcc")
  endif()
endif()

include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  if(KILN_CUDA STREQUAL "ON")
    message(FATAL_ERROR "KILN_CUDA=ON but no CUDA compiler was found: install the CUDA "
                        "toolkit or pip install \"kiln[cuda-build]\", or set CUDACXX")
  endif()
  message(STATUS "kiln: no CUDA compiler found; the CUDA backend is not built")
  return()
endif()

if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 80 90)
endif()
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
enable_language(CUDA)
set(KILN_CUDA_ROOT "${CMAKE_CUDA_COMPILER_TOOLKIT_ROOT}")
message(STATUS "kiln: CUDA backend with ${CMAKE_CUDA_COMPILER} "
               "(${CMAKE_CUDA_COMPILER_VERSION}), architectures ${CMAKE_CUDA_ARCHITECTURES}")

# The kernels: raw device pointers and sizes, no Python (like kiln_core).
file(GLOB KILN_CUDA_SOURCES CONFIGURE_DEPENDS csrc/cuda/*.cu)
add_library(kiln_cuda STATIC ${KILN_CUDA_SOURCES})
target_include_directories(kiln_cuda PUBLIC csrc ${CMAKE_CUDA_TOOLKIT_INCLUDE_DIRECTORIES})
target_compile_options(kiln_cuda PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra --expt-relaxed-constexpr>)
set_target_properties(kiln_cuda PROPERTIES CUDA_RUNTIME_LIBRARY Static
                                           POSITION_INDEPENDENT_CODE ON)
find_library(KILN_CUDART_STATIC NAMES cudart_static
             PATHS "${KILN_CUDA_ROOT}/lib64" "${KILN_CUDA_ROOT}/lib"
                   "${KILN_CUDA_ROOT}/targets/x86_64-linux/lib" "${KILN_CUDA_WHEEL_ROOT}/lib"
             NO_DEFAULT_PATH REQUIRED)
# cuBLAS (linear, matmul and the convolutions' GEMMs): the toolkit's, else the
# nvidia-cublas wheel's, which ships the versioned name only, so it is linked by full
# path and its folder goes on the extension's run path.
find_path(KILN_CUBLAS_INCLUDE cublas_v2.h
          PATHS "${KILN_CUDA_ROOT}/include" "${KILN_CUDA_ROOT}/targets/x86_64-linux/include"
                "${KILN_CUBLAS_WHEEL_ROOT}/include" "${KILN_CUDA_WHEEL_ROOT}/include"
          NO_DEFAULT_PATH REQUIRED)
find_library(KILN_CUBLAS NAMES cublas libcublas.so.13
             PATHS "${KILN_CUDA_ROOT}/lib64" "${KILN_CUDA_ROOT}/lib"
                   "${KILN_CUDA_ROOT}/targets/x86_64-linux/lib" "${KILN_CUBLAS_WHEEL_ROOT}/lib"
                   "${KILN_CUDA_WHEEL_ROOT}/lib"
             NO_DEFAULT_PATH REQUIRED)
get_filename_component(KILN_CUBLAS_DIR "${KILN_CUBLAS}" DIRECTORY)
message(STATUS "kiln: cuBLAS ${KILN_CUBLAS}")
target_include_directories(kiln_cuda PUBLIC ${KILN_CUBLAS_INCLUDE})
target_link_libraries(kiln_cuda PUBLIC kiln_core ${KILN_CUDART_STATIC} ${KILN_CUBLAS}
                                       ${CMAKE_DL_LIBS} rt Threads::Threads)

# cuDNN (the convolutions, cuda/conv.h), when found: the nvidia-cudnn wheel (beside
# PyTorch's) or a system install; versioned name only in the wheel, so linked by full
# path with its folder on the run path. Without it the convolutions use im2col + cuBLAS.
find_path(KILN_CUDNN_INCLUDE cudnn.h
          PATHS "${KILN_CUDNN_ROOT}/include" "${KILN_CUDA_ROOT}/include" /usr/include
                /usr/include/x86_64-linux-gnu
          NO_DEFAULT_PATH)
find_library(KILN_CUDNN_LIBRARY NAMES cudnn libcudnn.so.9
             PATHS "${KILN_CUDNN_ROOT}/lib" "${KILN_CUDA_ROOT}/lib64" /usr/lib/x86_64-linux-gnu
             NO_DEFAULT_PATH)
set(KILN_CUDNN_DIR "")
if(KILN_CUDNN_INCLUDE AND KILN_CUDNN_LIBRARY)
  get_filename_component(KILN_CUDNN_DIR "${KILN_CUDNN_LIBRARY}" DIRECTORY)
  message(STATUS "kiln: cuDNN ${KILN_CUDNN_LIBRARY}")
  target_compile_definitions(kiln_cuda PRIVATE KILN_CUDNN)
  target_include_directories(kiln_cuda PRIVATE ${KILN_CUDNN_INCLUDE})
  target_link_libraries(kiln_cuda PUBLIC ${KILN_CUDNN_LIBRARY})
else()
  message(STATUS "kiln: no cuDNN found; CUDA convolutions use im2col + cuBLAS")
endif()

file(GLOB KILN_CUDA_BINDING_SOURCES CONFIGURE_DEPENDS csrc/bindings/cuda/*.cpp)
pybind11_add_module(_C_cuda ${KILN_CUDA_BINDING_SOURCES})
target_link_libraries(_C_cuda PRIVATE kiln_cuda)
set_target_properties(_C_cuda PROPERTIES
  BUILD_RPATH "${OPENBLAS_LIB_DIR};${KILN_CUBLAS_DIR};${KILN_CUDNN_DIR}"
  INSTALL_RPATH "$ORIGIN/../scipy_openblas32/lib;${KILN_CUBLAS_DIR};${KILN_CUDNN_DIR}")
install(TARGETS _C_cuda LIBRARY DESTINATION kiln)

if(KILN_BUILD_TESTS)
  file(GLOB KILN_CUDA_TEST_SOURCES CONFIGURE_DEPENDS csrc/tests/cuda/*.cu)
  add_executable(kiln_cuda_tests ${KILN_CUDA_TEST_SOURCES})
  target_link_libraries(kiln_cuda_tests PRIVATE kiln_cuda GTest::gtest_main)
  set_target_properties(kiln_cuda_tests PROPERTIES
                        BUILD_RPATH "${OPENBLAS_LIB_DIR};${KILN_CUBLAS_DIR};${KILN_CUDNN_DIR}")
  gtest_discover_tests(kiln_cuda_tests DISCOVERY_MODE PRE_TEST)
endif()

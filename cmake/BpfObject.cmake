# skiff_bpf_object(NAME <name> SOURCE <file.c>)
# Compiles a BPF entry file with clang -target bpf and turns the object into a
# libbpf skeleton header (<name>.skel.h) with bpftool, so binaries embed the
# object and need no .o at run time. Adds <name>.skel.h to SKIFF_BPF_SKELETONS.

find_program(CLANG_BPF clang REQUIRED)
find_program(BPFTOOL bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

set(SKIFF_BPF_OUT ${CMAKE_BINARY_DIR}/bpf)
file(MAKE_DIRECTORY ${SKIFF_BPF_OUT})

execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch
                OUTPUT_VARIABLE SKIFF_MULTIARCH OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT SKIFF_MULTIARCH)
  set(SKIFF_MULTIARCH x86_64-linux-gnu)
endif()

file(GLOB SKIFF_BPF_HEADERS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/bpf/lib/*.h ${CMAKE_SOURCE_DIR}/maps/*.h)

function(skiff_bpf_object)
  cmake_parse_arguments(B "" "NAME;SOURCE" "" ${ARGN})
  set(obj ${SKIFF_BPF_OUT}/${B_NAME}.bpf.o)
  set(skel ${SKIFF_BPF_OUT}/${B_NAME}.skel.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CLANG_BPF} -g -O2 -target bpf -mcpu=v3 -Wall -Werror
            -I/usr/include/${SKIFF_MULTIARCH}
            -I${CMAKE_SOURCE_DIR}/bpf -I${CMAKE_SOURCE_DIR}/maps
            -c ${B_SOURCE} -o ${obj}
    DEPENDS ${B_SOURCE} ${SKIFF_BPF_HEADERS}
    COMMENT "BPF ${B_NAME}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${B_NAME} > ${skel}
    DEPENDS ${obj}
    COMMENT "skeleton ${B_NAME}"
    VERBATIM)
  set(SKIFF_BPF_SKELETONS ${SKIFF_BPF_SKELETONS} ${skel} PARENT_SCOPE)
  set(SKIFF_BPF_OBJECTS ${SKIFF_BPF_OBJECTS} ${obj} PARENT_SCOPE)
endfunction()

# Shared target settings: applied per target, never globally.
function(quantd_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter
                                           -Wno-sign-compare)
  if(QUANTD_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  target_include_directories(${target} PUBLIC ${QUANTD_SOURCE_ROOT})
endfunction()

# quantd_test(NAME SOURCES... LIBS ...): a GoogleTest binary registered with ctest.
function(quantd_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  if(QUANTD_SANITIZE MATCHES "thread")
    # Tells TSan what Debian's uninstrumented absl::Mutex synchronizes.
    target_sources(${name} PRIVATE
                   ${QUANTD_SOURCE_ROOT}/cmake/tsan/absl_sync_annotations.cc)
  endif()
  quantd_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock
                                        GTest::gtest_main)
  target_compile_definitions(
    ${name} PRIVATE QUANTD_TESTDATA_DIR="${QUANTD_TESTDATA_DIR}"
                    QUANTD_SOURCE_DIR="${QUANTD_SOURCE_ROOT}"
                    QUANTD_GENERATED_TESTDATA_DIR="${QUANTD_GENERATED_TESTDATA_DIR}")
  add_test(NAME ${name} COMMAND ${name})
  if(ARG_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
endfunction()

# quantd_layer(<target> DEPS <targets...>): records that <target> is built
# from the current source folder and may use only <targets> (and what they
# use in turn). tools/check_layering.py reads the table written at the end
# of configuration (build/layers.txt) and fails on any #include that points
# up or sideways, so the arrows between folders are checked, not just drawn.
function(quantd_layer target)
  cmake_parse_arguments(ARG "" "" "DEPS;FOLDERS" ${ARGN})
  file(RELATIVE_PATH folder ${QUANTD_SOURCE_ROOT} ${CMAKE_CURRENT_SOURCE_DIR})
  set(folders ${folder})
  foreach(sub ${ARG_FOLDERS})
    list(APPEND folders ${folder}/${sub})
  endforeach()
  string(REPLACE ";" "," folders "${folders}")
  set(deps)
  foreach(dep ${ARG_DEPS})
    if(dep MATCHES "^quantd_")
      list(APPEND deps ${dep})
    endif()
  endforeach()
  string(REPLACE ";" "," deps "${deps}")
  set_property(GLOBAL APPEND PROPERTY QUANTD_LAYERS "${target}|${folders}|${deps}")
endfunction()

# quantd_room(<target> [SUBDIRS dirs...] [EXCLUDE regex] DEPS <libs...>
#             [PRIVATE <libs...>] [TEST_PREFIX p] [TEST_LIBS <libs...>])
# One folder, one static library: every foo.cc in the folder (and SUBDIRS)
# joins <target>, every foo_test.cc becomes the test binary <p>_foo_test
# linked with <target> and TEST_LIBS. Adding a file is all it takes to add
# code or a test.
function(quantd_room target)
  cmake_parse_arguments(ARG "" "EXCLUDE;TEST_PREFIX"
                        "SUBDIRS;DEPS;PRIVATE;TEST_LIBS" ${ARGN})
  set(globs ${CMAKE_CURRENT_SOURCE_DIR}/*.cc)
  foreach(sub ${ARG_SUBDIRS})
    list(APPEND globs ${CMAKE_CURRENT_SOURCE_DIR}/${sub}/*.cc)
  endforeach()
  file(GLOB all_sources CONFIGURE_DEPENDS ${globs})
  set(sources ${all_sources})
  set(tests ${all_sources})
  list(FILTER sources EXCLUDE REGEX "_test\\.cc$")
  if(ARG_EXCLUDE)
    list(FILTER sources EXCLUDE REGEX "${ARG_EXCLUDE}")
  endif()
  list(FILTER tests INCLUDE REGEX "_test\\.cc$")
  add_library(${target} STATIC ${sources})
  quantd_target_defaults(${target})
  target_link_libraries(${target} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE})
  quantd_layer(${target} DEPS ${ARG_DEPS} FOLDERS ${ARG_SUBDIRS})
  if(QUANTD_BUILD_TESTS)
    foreach(test_source ${tests})
      get_filename_component(test_name ${test_source} NAME_WE)
      quantd_test(${ARG_TEST_PREFIX}_${test_name} SOURCES ${test_source}
                  LIBS ${target} ${ARG_TEST_LIBS} LABELS unit)
    endforeach()
  endif()
endfunction()

# Writes the table quantd_layer() collected (call once, at the end of the
# top-level CMakeLists.txt).
function(quantd_write_layers file)
  get_property(layers GLOBAL PROPERTY QUANTD_LAYERS)
  string(REPLACE ";" "\n" text "${layers}")
  file(WRITE ${file} "${text}\n")
endfunction()

# Sanitizer and fuzzer builds (tools/sanitize.sh configures build-asan with
# clang; build-tsan likewise). QUANTD_SANITIZE names clang's sanitizers:
#   -DQUANTD_SANITIZE=address,undefined   (UB aborts: no recovery)
#   -DQUANTD_SANITIZE=thread
# QUANTD_FUZZ=ON builds the libFuzzer targets in fuzz/ and adds coverage
# instrumentation; without QUANTD_SANITIZE it implies address,undefined, since
# a fuzzer without ASan misses most memory errors it provokes.
# Unlike every other flag these apply to all targets (add_compile_options):
# a sanitizer or the fuzzer's coverage only sees code compiled with it, and a
# library left out would hide the very bugs the build is for.
set(QUANTD_SANITIZE "" CACHE STRING
    "clang sanitizers for every target: address,undefined or thread")
option(QUANTD_FUZZ "Build the libFuzzer targets in fuzz/ (clang)" OFF)
if(QUANTD_FUZZ AND NOT QUANTD_SANITIZE)
  set(QUANTD_SANITIZE address,undefined)
endif()
if(QUANTD_FUZZ AND QUANTD_SANITIZE MATCHES "thread")
  message(FATAL_ERROR "QUANTD_FUZZ runs under ASan+UBSan: configure it in a "
                      "build folder with QUANTD_SANITIZE=address,undefined")
endif()
if(QUANTD_SANITIZE)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "QUANTD_SANITIZE needs clang: configure a fresh build "
                        "folder with -DCMAKE_CXX_COMPILER=clang++ "
                        "-DCMAKE_C_COMPILER=clang")
  endif()
  set(quantd_sanitize_flags -fsanitize=${QUANTD_SANITIZE}
                            -fno-omit-frame-pointer)
  if(QUANTD_SANITIZE MATCHES "undefined")
    # A UB report fails the test or the fuzz run instead of scrolling by.
    list(APPEND quantd_sanitize_flags -fno-sanitize-recover=undefined)
  endif()
  add_compile_options(${quantd_sanitize_flags}
                      # Instrumented loops often cannot honour
                      # `#pragma omp simd`; that costs speed, not
                      # correctness, and is no news in these builds.
                      -Wno-pass-failed)
  add_link_options(${quantd_sanitize_flags})
endif()
if(QUANTD_FUZZ)
  # Coverage feedback for libFuzzer in every library; fuzz/ links the
  # libFuzzer driver itself (-fsanitize=fuzzer) into its targets only.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

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
  quantd_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock
                                        GTest::gtest_main)
  target_compile_definitions(
    ${name} PRIVATE QUANTD_TESTDATA_DIR="${QUANTD_TESTDATA_DIR}"
                    QUANTD_GENERATED_TESTDATA_DIR="${QUANTD_GENERATED_TESTDATA_DIR}")
  add_test(NAME ${name} COMMAND ${name})
  if(ARG_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
endfunction()

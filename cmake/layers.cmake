# The layers of plexus as CMake targets (docs/architecture.md, "Layers").
#
# plexus_layer(NAME [DEPENDS layer...] [PRIVATE_DEPENDS target...] [INTERNAL]) makes
# the target plexus_NAME from src/NAME/*.cpp (tests excluded). Its public headers,
# include/plexus/NAME/, and its internal ones, src/NAME/, are seen through a folder
# of the layer's own in the build tree (build/layers/NAME/, symbolic links), so a
# layer's code finds only its own headers and those of the layers it DEPENDS on (and
# theirs): an #include that runs up the table fails with "No such file or directory".
# Each layer with sources is also linked whole into a small program of its own
# (plexus_layer_link_NAME, built by default), so a call that runs up the table fails
# the link with an undefined reference. INTERNAL layers (the application) install
# nothing, and their headers live in src/NAME/.

set(PLEXUS_LAYER_ROOT ${CMAKE_BINARY_DIR}/layers)

# (The link is made even before its target exists: a layer folder added later is seen
# without configuring again.)
function(plexus_stage_link from to)
  if(NOT IS_SYMLINK ${to})
    file(CREATE_LINK ${from} ${to} SYMBOLIC)
  endif()
endfunction()

function(plexus_layer name)
  cmake_parse_arguments(PARSE_ARGV 1 L "INTERNAL" "" "DEPENDS;PRIVATE_DEPENDS")
  set(target plexus_${name})
  set(stage ${PLEXUS_LAYER_ROOT}/${name})
  file(MAKE_DIRECTORY ${stage}/include/plexus ${stage}/src)
  plexus_stage_link(${CMAKE_SOURCE_DIR}/include/plexus/${name} ${stage}/include/plexus/${name})
  plexus_stage_link(${CMAKE_SOURCE_DIR}/src/${name} ${stage}/src/${name})

  set(deps plexus_base)
  foreach(d IN LISTS L_DEPENDS)
    list(APPEND deps plexus_${d})
  endforeach()
  if(L_INTERNAL)
    set(public_include $<BUILD_INTERFACE:${stage}/src>)
  else()
    set(public_include $<BUILD_INTERFACE:${stage}/include>
                       $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  endif()

  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/${name}/*.cpp)
  list(FILTER sources EXCLUDE REGEX "_test\\.cpp$")
  if(sources)
    add_library(${target} STATIC ${sources})
    target_include_directories(${target} PUBLIC ${public_include} PRIVATE ${stage}/src)
    target_link_libraries(${target} PUBLIC ${deps} PRIVATE ${L_PRIVATE_DEPENDS})
    target_precompile_headers(${target} REUSE_FROM plexus_pch)
    # The linker's check: the whole layer, and nothing above it, makes a program.
    add_executable(plexus_layer_link_${name} ${CMAKE_SOURCE_DIR}/cmake/layer_link_main.cpp)
    target_link_libraries(plexus_layer_link_${name} PRIVATE
      "$<LINK_LIBRARY:WHOLE_ARCHIVE,${target}>" ${deps})
  else()
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${public_include})
    target_link_libraries(${target} INTERFACE ${deps})
  endif()
  if(NOT L_INTERNAL)
    set_property(GLOBAL APPEND PROPERTY PLEXUS_LIBRARY_LAYERS ${target})
  endif()
endfunction()

# ctest cases that show the build refusing an upward #include: for each pair
# "LOWER:UPPER:HEADER", a one-line unit of layer LOWER includes HEADER of layer UPPER;
# building it must fail because the header is not found. A probe marked ":allowed"
# includes downwards and must compile (it shows that the probe itself works).
function(plexus_layer_tests)
  set(probes
    "os:wire:plexus/wire/error.hpp"
    "wire:log:plexus/log/record.hpp"
    "log:transport:plexus/transport/connection.hpp"
    "transport:rpc:plexus/rpc/client.hpp"
    "transport:broker:plexus/broker/router.hpp"
    "rpc:broker:plexus/broker/router.hpp"
    "broker:rpc:plexus/rpc/client.hpp"
    "supervisor:rpc:plexus/rpc/supervision.hpp"
    "supervisor:broker:plexus/broker/router.hpp"
    "supervisor:transport:plexus/transport/connection.hpp"
    "config:app:app/run.hpp"
    "broker:gateway:plexus/gateway/gateway.hpp"
    "rpc:wire:plexus/wire/message.hpp:allowed")
  foreach(probe IN LISTS probes)
    string(REPLACE ":" ";" parts ${probe})
    list(GET parts 0 lower)
    list(GET parts 1 upper)
    list(GET parts 2 header)
    set(probe_target plexus_layer_probe_${lower}_${upper})
    set(source ${PLEXUS_LAYER_ROOT}/probes/${lower}_includes_${upper}.cpp)
    file(WRITE ${source} "#include \"${header}\"\n")
    add_library(${probe_target} OBJECT EXCLUDE_FROM_ALL ${source})
    target_link_libraries(${probe_target} PRIVATE plexus_${lower})
    add_test(NAME layer_include_${lower}_${upper}
      COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target ${probe_target})
    list(LENGTH parts n)
    if(n EQUAL 4)
      set_tests_properties(layer_include_${lower}_${upper} PROPERTIES TIMEOUT 300)
    else()
      set_tests_properties(layer_include_${lower}_${upper} PROPERTIES TIMEOUT 300
        PASS_REGULAR_EXPRESSION "${header}: No such file or directory")
    endif()
  endforeach()
endfunction()

/*
 * A Vulkan layer that reports what the driver compiled each compute pipeline into: registers, shared
 * (workgroup) memory, spills, as the driver's VK_KHR_pipeline_executable_properties statistics name them.
 *
 * Why: WebGPU reports nothing of the kind, and the scan kernels' speed on the H200 depends on how many
 * workgroups an SM holds (docs/results.md §8b–8g), which registers or workgroup memory bound. Deno's wgpu
 * does not enable the extension, so the layer enables it at vkCreateDevice, asks for statistics at each
 * vkCreateComputePipelines, and appends one JSON line per pipeline executable to $MDL_VK_STATS (stderr when
 * unset). Diagnostic only: nothing in lib/ needs it. Build and use: bench/vk_pipeline_stats/README.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vk_layer.h>
#include <vulkan/vulkan.h>

#define LAYER_NAME "VK_LAYER_MDL_pipeline_stats"
#define EXPORT __attribute__((visibility("default")))

/* One instance and one device are enough for a benchmark process; a second one is passed through. */
static PFN_vkGetInstanceProcAddr nextInstanceProcAddr;
static PFN_vkGetDeviceProcAddr nextDeviceProcAddr;
static PFN_vkCreateComputePipelines nextCreateComputePipelines;
static PFN_vkGetPipelineExecutablePropertiesKHR getExecutableProperties;
static PFN_vkGetPipelineExecutableStatisticsKHR getExecutableStatistics;
static VkDevice statsDevice;
static int statsEnabled;
static unsigned pipelineCount;
static VkInstance layerInstance;

static FILE *output(void) {
  static FILE *f;
  if (!f) {
    const char *path = getenv("MDL_VK_STATS");
    f = path ? fopen(path, "a") : NULL;
    if (!f) f = stderr;
  }
  return f;
}

/* JSON string body: the names come from the driver and from WGSL entry points, but escape anyway. */
static void writeJsonString(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', f);
    if ((unsigned char)*s >= 0x20) fputc(*s, f);
  }
  fputc('"', f);
}

static VKAPI_ATTR VkResult VKAPI_CALL statsCreateInstance(const VkInstanceCreateInfo *info,
                                                          const VkAllocationCallbacks *allocator,
                                                          VkInstance *instance) {
  VkLayerInstanceCreateInfo *link = (VkLayerInstanceCreateInfo *)info->pNext;
  while (link && !(link->sType == VK_STRUCTURE_TYPE_LOADER_INSTANCE_CREATE_INFO && link->function == VK_LAYER_LINK_INFO))
    link = (VkLayerInstanceCreateInfo *)link->pNext;
  if (!link) return VK_ERROR_INITIALIZATION_FAILED;
  nextInstanceProcAddr = link->u.pLayerInfo->pfnNextGetInstanceProcAddr;
  link->u.pLayerInfo = link->u.pLayerInfo->pNext;
  PFN_vkCreateInstance next = (PFN_vkCreateInstance)nextInstanceProcAddr(VK_NULL_HANDLE, "vkCreateInstance");
  VkResult result = next(info, allocator, instance);
  if (result == VK_SUCCESS) layerInstance = *instance;
  return result;
}

static int deviceHasExtension(VkInstance instance, VkPhysicalDevice gpu, const char *name) {
  PFN_vkEnumerateDeviceExtensionProperties enumerate =
      (PFN_vkEnumerateDeviceExtensionProperties)nextInstanceProcAddr(instance, "vkEnumerateDeviceExtensionProperties");
  uint32_t n = 0;
  if (!enumerate || enumerate(gpu, NULL, &n, NULL) != VK_SUCCESS) return 0;
  VkExtensionProperties *props = calloc(n, sizeof *props);
  int found = 0;
  if (props && enumerate(gpu, NULL, &n, props) == VK_SUCCESS)
    for (uint32_t i = 0; i < n; i++) found |= strcmp(props[i].extensionName, name) == 0;
  free(props);
  return found;
}

static VKAPI_ATTR VkResult VKAPI_CALL statsCreateDevice(VkPhysicalDevice gpu, const VkDeviceCreateInfo *info,
                                                        const VkAllocationCallbacks *allocator, VkDevice *device) {
  VkLayerDeviceCreateInfo *link = (VkLayerDeviceCreateInfo *)info->pNext;
  while (link && !(link->sType == VK_STRUCTURE_TYPE_LOADER_DEVICE_CREATE_INFO && link->function == VK_LAYER_LINK_INFO))
    link = (VkLayerDeviceCreateInfo *)link->pNext;
  if (!link) return VK_ERROR_INITIALIZATION_FAILED;
  PFN_vkGetInstanceProcAddr gipa = link->u.pLayerInfo->pfnNextGetInstanceProcAddr;
  PFN_vkGetDeviceProcAddr gdpa = link->u.pLayerInfo->pfnNextGetDeviceProcAddr;
  link->u.pLayerInfo = link->u.pLayerInfo->pNext;
  PFN_vkCreateDevice next = (PFN_vkCreateDevice)gipa(layerInstance, "vkCreateDevice");

  /* The caller's create info with the extension and its feature added (both only when the driver has them). */
  const char *ext = VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME;
  int supported = deviceHasExtension(layerInstance, gpu, ext);
  VkDeviceCreateInfo patched = *info;
  const char **names = calloc(info->enabledExtensionCount + 1, sizeof *names);
  VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR feature = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR,
      .pNext = (void *)info->pNext,
      .pipelineExecutableInfo = VK_TRUE,
  };
  if (supported && names) {
    int already = 0;
    for (uint32_t i = 0; i < info->enabledExtensionCount; i++) {
      names[i] = info->ppEnabledExtensionNames[i];
      already |= strcmp(names[i], ext) == 0;
    }
    patched.enabledExtensionCount = info->enabledExtensionCount + (already ? 0 : 1);
    if (!already) names[info->enabledExtensionCount] = ext;
    patched.ppEnabledExtensionNames = names;
    patched.pNext = &feature;
  }
  VkResult result = next(gpu, &patched, allocator, device);
  free(names);
  if (result != VK_SUCCESS) return result;

  if (!statsDevice) {
    statsDevice = *device;
    nextDeviceProcAddr = gdpa;
    nextCreateComputePipelines = (PFN_vkCreateComputePipelines)gdpa(*device, "vkCreateComputePipelines");
    getExecutableProperties =
        (PFN_vkGetPipelineExecutablePropertiesKHR)gdpa(*device, "vkGetPipelineExecutablePropertiesKHR");
    getExecutableStatistics =
        (PFN_vkGetPipelineExecutableStatisticsKHR)gdpa(*device, "vkGetPipelineExecutableStatisticsKHR");
    statsEnabled = supported && getExecutableProperties && getExecutableStatistics;
    fprintf(output(), "{\"layer\":\"%s\",\"statistics\":%s}\n", LAYER_NAME, statsEnabled ? "true" : "false");
    fflush(output());
  }
  return VK_SUCCESS;
}

static void writeStatistic(FILE *f, const VkPipelineExecutableStatisticKHR *s) {
  fputc(',', f);
  writeJsonString(f, s->name);
  fputc(':', f);
  switch (s->format) {
  case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR:
    fputs(s->value.b32 ? "true" : "false", f);
    break;
  case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR:
    fprintf(f, "%lld", (long long)s->value.i64);
    break;
  case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR:
    fprintf(f, "%llu", (unsigned long long)s->value.u64);
    break;
  default:
    fprintf(f, "%g", s->value.f64);
  }
}

/* One line per executable: {"pipeline": k, "entry": WGSL entry point, "executable": driver's name, stats...}. */
static void reportPipeline(VkPipeline pipeline, const char *entry) {
  FILE *f = output();
  VkPipelineInfoKHR pinfo = {.sType = VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR, .pipeline = pipeline};
  uint32_t n = 0;
  if (getExecutableProperties(statsDevice, &pinfo, &n, NULL) != VK_SUCCESS) return;
  VkPipelineExecutablePropertiesKHR *props = calloc(n, sizeof *props);
  for (uint32_t i = 0; props && i < n; i++) props[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_PROPERTIES_KHR;
  if (props && getExecutableProperties(statsDevice, &pinfo, &n, props) == VK_SUCCESS) {
    for (uint32_t e = 0; e < n; e++) {
      VkPipelineExecutableInfoKHR einfo = {
          .sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR, .pipeline = pipeline, .executableIndex = e};
      uint32_t m = 0;
      getExecutableStatistics(statsDevice, &einfo, &m, NULL);
      VkPipelineExecutableStatisticKHR *stats = calloc(m ? m : 1, sizeof *stats);
      for (uint32_t i = 0; stats && i < m; i++) stats[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR;
      fprintf(f, "{\"pipeline\":%u,\"entry\":", pipelineCount);
      writeJsonString(f, entry ? entry : "");
      fputs(",\"executable\":", f);
      writeJsonString(f, props[e].name);
      fprintf(f, ",\"subgroupSize\":%u", props[e].subgroupSize);
      if (stats && getExecutableStatistics(statsDevice, &einfo, &m, stats) == VK_SUCCESS)
        for (uint32_t i = 0; i < m; i++) writeStatistic(f, &stats[i]);
      fputs("}\n", f);
      free(stats);
    }
  }
  free(props);
  fflush(f);
}

static VKAPI_ATTR VkResult VKAPI_CALL statsCreateComputePipelines(VkDevice device, VkPipelineCache cache, uint32_t count,
                                                                  const VkComputePipelineCreateInfo *infos,
                                                                  const VkAllocationCallbacks *allocator,
                                                                  VkPipeline *pipelines) {
  if (device != statsDevice || !statsEnabled)
    return nextCreateComputePipelines(device, cache, count, infos, allocator, pipelines);
  VkComputePipelineCreateInfo *patched = calloc(count, sizeof *patched);
  if (!patched) return nextCreateComputePipelines(device, cache, count, infos, allocator, pipelines);
  for (uint32_t i = 0; i < count; i++) {
    patched[i] = infos[i];
    patched[i].flags |= VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR;
  }
  VkResult result = nextCreateComputePipelines(device, cache, count, patched, allocator, pipelines);
  if (result == VK_SUCCESS)
    for (uint32_t i = 0; i < count; i++, pipelineCount++) reportPipeline(pipelines[i], infos[i].stage.pName);
  free(patched);
  return result;
}

static PFN_vkVoidFunction ownFunction(const char *name);

static VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL statsGetDeviceProcAddr(VkDevice device, const char *name) {
  PFN_vkVoidFunction own = ownFunction(name);
  if (own && strcmp(name, "vkCreateInstance") && strcmp(name, "vkCreateDevice")) return own;
  return nextDeviceProcAddr ? nextDeviceProcAddr(device, name) : NULL;
}

static VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL statsGetInstanceProcAddr(VkInstance instance, const char *name) {
  PFN_vkVoidFunction own = ownFunction(name);
  if (own) return own;
  return nextInstanceProcAddr ? nextInstanceProcAddr(instance, name) : NULL;
}

static PFN_vkVoidFunction ownFunction(const char *name) {
  if (!strcmp(name, "vkGetInstanceProcAddr")) return (PFN_vkVoidFunction)statsGetInstanceProcAddr;
  if (!strcmp(name, "vkGetDeviceProcAddr")) return (PFN_vkVoidFunction)statsGetDeviceProcAddr;
  if (!strcmp(name, "vkCreateInstance")) return (PFN_vkVoidFunction)statsCreateInstance;
  if (!strcmp(name, "vkCreateDevice")) return (PFN_vkVoidFunction)statsCreateDevice;
  if (!strcmp(name, "vkCreateComputePipelines")) return (PFN_vkVoidFunction)statsCreateComputePipelines;
  return NULL;
}

EXPORT VKAPI_ATTR VkResult VKAPI_CALL vkNegotiateLoaderLayerInterfaceVersion(VkNegotiateLayerInterface *v) {
  if (v->loaderLayerInterfaceVersion > 2) v->loaderLayerInterfaceVersion = 2;
  v->pfnGetInstanceProcAddr = statsGetInstanceProcAddr;
  v->pfnGetDeviceProcAddr = statsGetDeviceProcAddr;
  v->pfnGetPhysicalDeviceProcAddr = NULL;
  return VK_SUCCESS;
}

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL vkGetInstanceProcAddr(VkInstance instance, const char *name) {
  return statsGetInstanceProcAddr(instance, name);
}

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL vkGetDeviceProcAddr(VkDevice device, const char *name) {
  return statsGetDeviceProcAddr(device, name);
}

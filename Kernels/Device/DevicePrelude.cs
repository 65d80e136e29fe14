namespace GpuActivations.Device;

/// <summary>
/// The prelude every device program starts with: it maps the few differences between OpenCL C 1.2 and CUDA C++
/// (NVRTC) onto one set of names, so each kernel is written once and compiled by both.
/// <list type="bullet">
/// <item><c>KERNEL</c>, <c>GLOBAL</c>, <c>GA_DEVICE_FN</c>: qualifiers. <c>LOCAL</c> declares work-group memory
/// (<c>__local</c> / <c>__shared__</c>, at kernel scope); <c>LOCAL_PTR</c> qualifies a pointer to it in a device
/// function's parameters (<c>__local</c> / nothing: CUDA pointers are generic and <c>__shared__</c> is not allowed there).</item>
/// <item><c>GA_GROUP_ID(d)</c>, <c>GA_LOCAL_ID(d)</c>, <c>GA_LOCAL_SIZE(d)</c>, <c>GA_NUM_GROUPS(d)</c>,
/// <c>GA_GLOBAL_ID(d)</c>, <c>GA_GLOBAL_SIZE(d)</c>: work-item geometry, dimension d in 0..2, as 64-bit
/// <c>ga_index</c> (ids within a group as <c>int</c>).</item>
/// <item><c>BARRIER()</c>: a work-group barrier that also orders local memory.</item>
/// <item><c>GA_INFINITY</c>, <c>GA_NAN</c>, <c>GA_ISNAN(v)</c>.</item>
/// <item><c>GA_MAX_THREADS(n)</c>, written between <c>KERNEL</c> and <c>void</c>: CUDA's <c>__launch_bounds__(n)</c>, so the
/// compiler keeps the kernel's registers within what n threads per block allow (nothing in OpenCL).</item>
/// <item><c>GA_OPENCL</c> or <c>GA_CUDA</c> is defined, for the few CUDA-only fast paths (warp shuffles) that sit
/// beside their portable form under <c>#if defined(GA_CUDA)</c>.</item>
/// </list>
/// Math is written with the overloaded names (<c>exp</c>, <c>tanh</c>, <c>erfc</c>, <c>log1p</c>, <c>fma</c>) on float:
/// OpenCL C has them natively, CUDA C++ has float overloads. <c>GA_GROUP_SIZE</c> (the work-group size the
/// host launches with, a power of two) is defined by <see cref="Compose"/> ahead of the prelude.
/// </summary>
internal static class DevicePrelude
{
    /// <summary>The prelude text.</summary>
    public const string Source = """
        #if defined(__OPENCL_VERSION__)
        #define GA_OPENCL 1
        #define KERNEL __kernel
        #define GLOBAL __global
        #define LOCAL __local
        #define LOCAL_PTR __local
        #define GA_DEVICE_FN static inline
        typedef long ga_index;
        #define GA_GROUP_ID(d) ((ga_index)get_group_id(d))
        #define GA_LOCAL_ID(d) ((int)get_local_id(d))
        #define GA_LOCAL_SIZE(d) ((int)get_local_size(d))
        #define GA_NUM_GROUPS(d) ((ga_index)get_num_groups(d))
        #define GA_GLOBAL_ID(d) ((ga_index)get_global_id(d))
        #define GA_GLOBAL_SIZE(d) ((ga_index)get_global_size(d))
        #define BARRIER() barrier(CLK_LOCAL_MEM_FENCE)
        #define GA_INFINITY INFINITY
        #define GA_NAN NAN
        #define GA_ISNAN(v) isnan(v)
        #define GA_MAX_THREADS(n)
        #elif defined(__CUDACC__) || defined(__CUDACC_RTC__)
        #define GA_CUDA 1
        #define KERNEL extern "C" __global__
        #define GLOBAL
        #define LOCAL __shared__
        #define LOCAL_PTR
        #define GA_DEVICE_FN static __device__ __forceinline__
        typedef long long ga_index;
        #define GA_DIM3(v, d) ((d) == 0 ? (v).x : (d) == 1 ? (v).y : (v).z)
        #define GA_GROUP_ID(d) ((ga_index)GA_DIM3(blockIdx, d))
        #define GA_LOCAL_ID(d) ((int)GA_DIM3(threadIdx, d))
        #define GA_LOCAL_SIZE(d) ((int)GA_DIM3(blockDim, d))
        #define GA_NUM_GROUPS(d) ((ga_index)GA_DIM3(gridDim, d))
        #define GA_GLOBAL_ID(d) (GA_GROUP_ID(d) * GA_LOCAL_SIZE(d) + GA_LOCAL_ID(d))
        #define GA_GLOBAL_SIZE(d) (GA_NUM_GROUPS(d) * GA_LOCAL_SIZE(d))
        #define BARRIER() __syncthreads()
        #define GA_INFINITY __int_as_float(0x7f800000)
        #define GA_NAN __int_as_float(0x7fffffff)
        #define GA_ISNAN(v) isnan(v)
        #define GA_MAX_THREADS(n) __launch_bounds__(n)
        #else
        #error "GpuActivations device code is OpenCL C 1.2 or CUDA C++ (NVRTC)"
        #endif

        /* Tensor storage. Kernels read tensor inputs as ga_in_t through GA_LOAD_IN(p, i) and write tensor outputs as
           ga_out_t through GA_STORE_OUT(p, i, v), always computing in float; parameters (slopes, masks) stay float.
           The host picks the storage per program (GA_IN_TYPE / GA_OUT_TYPE: 0 float, 1 fp16, 2 bf16).
           fp16: OpenCL's core vload_half / vstore_half_rte (no cl_khr_fp16 needed); CUDA's cvt instructions in registers
           (no header). bf16 is the upper half of a float: loading is a shift, storing rounds to nearest even in integers
           (NaN kept quiet with its sign), the same rule as the CPU's BFloat16.Round. */
        #ifndef GA_IN_TYPE
        #define GA_IN_TYPE 0
        #endif
        #ifndef GA_OUT_TYPE
        #define GA_OUT_TYPE GA_IN_TYPE
        #endif
        #if defined(GA_OPENCL)
        typedef half ga_half_t;
        typedef ushort ga_bf16_t;
        #define GA_LOAD_HALF(p, i) vload_half((size_t)(i), (p))
        #define GA_STORE_HALF(p, i, v) vstore_half_rte((v), (size_t)(i), (p))
        #define GA_FLOAT_BITS(v) as_uint(v)
        #define GA_BITS_FLOAT(b) as_float(b)
        #else
        typedef unsigned short ga_half_t;
        typedef unsigned short ga_bf16_t;
        GA_DEVICE_FN float ga_half_to_float(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
        GA_DEVICE_FN unsigned short ga_float_to_half(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
        #define GA_LOAD_HALF(p, i) ga_half_to_float((p)[i])
        #define GA_STORE_HALF(p, i, v) ((p)[i] = ga_float_to_half(v))
        #define GA_FLOAT_BITS(v) __float_as_uint(v)
        #define GA_BITS_FLOAT(b) __uint_as_float(b)
        #endif
        GA_DEVICE_FN ga_bf16_t ga_float_to_bf16(float v)
        {
            const unsigned int b = GA_FLOAT_BITS(v);
            if ((b & 0x7fffffffu) > 0x7f800000u) return (ga_bf16_t)((b >> 16) | 0x40u);
            return (ga_bf16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
        }
        #define GA_LOAD_BF16(p, i) GA_BITS_FLOAT((unsigned int)(p)[i] << 16)
        #define GA_STORE_BF16(p, i, v) ((p)[i] = ga_float_to_bf16(v))
        #if GA_IN_TYPE == 0
        typedef float ga_in_t;
        #define GA_LOAD_IN(p, i) ((p)[i])
        #elif GA_IN_TYPE == 1
        typedef ga_half_t ga_in_t;
        #define GA_LOAD_IN(p, i) GA_LOAD_HALF(p, i)
        #else
        typedef ga_bf16_t ga_in_t;
        #define GA_LOAD_IN(p, i) GA_LOAD_BF16(p, i)
        #endif
        #if GA_OUT_TYPE == 0
        typedef float ga_out_t;
        #define GA_STORE_OUT(p, i, v) ((p)[i] = (v))
        #elif GA_OUT_TYPE == 1
        typedef ga_half_t ga_out_t;
        #define GA_STORE_OUT(p, i, v) GA_STORE_HALF(p, i, v)
        #else
        typedef ga_bf16_t ga_out_t;
        #define GA_STORE_OUT(p, i, v) GA_STORE_BF16(p, i, v)
        #endif

        """;

    /// <summary>
    /// Wraps an activation body as the device function every activation kernel calls (and its float4 form,
    /// <c>ga_activation4</c>, for the 128-bit paths):
    /// <c>float ga_activation(float x, float alpha, float beta, float threshold)</c>.
    /// </summary>
    public static string ActivationFunction(DeviceActivation activation) =>
        $$"""
        GA_DEVICE_FN float ga_activation(float x, float alpha, float beta, float threshold)
        {
        {{activation.Body}}
        }
        GA_DEVICE_FN float4 ga_activation4(float4 v, float alpha, float beta, float threshold)
        {
            float4 r;
            r.x = ga_activation(v.x, alpha, beta, threshold);
            r.y = ga_activation(v.y, alpha, beta, threshold);
            r.z = ga_activation(v.z, alpha, beta, threshold);
            r.w = ga_activation(v.w, alpha, beta, threshold);
            return r;
        }

        """;

    /// <summary>
    /// The backward pass's device functions for an activation: <c>float ga_activation_grad(float x, float alpha, float
    /// beta, float threshold)</c>, f'(x), and <c>ga_activation_grad_out(float y, ...)</c>, f'(x) from y = f(x) (NaN for
    /// the activations without one; the host never launches it for them).
    /// </summary>
    public static string DerivativeFunctions(DeviceActivation activation) =>
        $$"""
        GA_DEVICE_FN float ga_activation_grad(float x, float alpha, float beta, float threshold)
        {
        {{activation.DerivativeBody ?? throw new ArgumentException($"{activation.Name} has no device derivative", nameof(activation))}}
        }
        GA_DEVICE_FN float ga_activation_grad_out(float y, float alpha, float beta, float threshold)
        {
        {{activation.OutputDerivativeBody ?? "return GA_NAN;"}}
        }

        """;

    /// <summary>
    /// A whole program: <c>GA_GROUP_SIZE</c>, <c>GA_CPU_DEVICE</c> for CPU devices (kernels may shape loops for
    /// implementations that vectorise across work-items, like PoCL), the prelude, the activation's functions (when the
    /// kernels use one: <paramref name="functions"/>, e.g. <see cref="ActivationFunction"/>, after <c>DeviceMath</c>'s
    /// helpers) and the kernels.
    /// </summary>
    public static string Compose(int groupSize, string? functions, string kernels, bool cpuDevice = false, ProgramStorage storage = default) =>
        $"#define GA_GROUP_SIZE {groupSize}\n" + (cpuDevice ? "#define GA_CPU_DEVICE 1\n" : "") + storage.Defines + Source
        + (functions is null ? "" : DeviceMath.Source + functions)
        + kernels;
}

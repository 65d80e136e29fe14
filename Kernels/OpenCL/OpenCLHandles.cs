using System.Runtime.InteropServices;

namespace GpuActivations.OpenCL;

/// <summary>
/// A native OpenCL object we own (or, with <c>ownsHandle: false</c>, borrow): released exactly once, by
/// <see cref="SafeHandle.Dispose()"/> or, if that is forgotten, by the finalizer.
/// </summary>
internal abstract unsafe class OpenCLHandle : SafeHandle
{
    /// <summary>The binding whose release entry point frees this handle.</summary>
    protected readonly OpenCLNative Api;

    /// <summary>Wraps <paramref name="handle"/>; releases it on dispose only when <paramref name="ownsHandle"/>.</summary>
    protected OpenCLHandle(OpenCLNative api, nint handle, bool ownsHandle) : base(0, ownsHandle)
    {
        Api = api;
        SetHandle(handle);
    }

    /// <inheritdoc/>
    public override bool IsInvalid => handle == 0;

    /// <summary>The raw handle (valid while this object is alive and not disposed).</summary>
    public nint Value => handle;
}

/// <summary>A cl_context.</summary>
internal sealed unsafe class OpenCLContextHandle(OpenCLNative api, nint handle, bool ownsHandle) : OpenCLHandle(api, handle, ownsHandle)
{
    /// <inheritdoc/>
    protected override bool ReleaseHandle() => Api.clReleaseContext(handle) == 0;
}

/// <summary>A cl_command_queue.</summary>
internal sealed unsafe class OpenCLQueueHandle(OpenCLNative api, nint handle, bool ownsHandle) : OpenCLHandle(api, handle, ownsHandle)
{
    /// <inheritdoc/>
    protected override bool ReleaseHandle() => Api.clReleaseCommandQueue(handle) == 0;
}

/// <summary>A cl_mem.</summary>
internal sealed unsafe class OpenCLMemHandle(OpenCLNative api, nint handle) : OpenCLHandle(api, handle, ownsHandle: true)
{
    /// <inheritdoc/>
    protected override bool ReleaseHandle() => Api.clReleaseMemObject(handle) == 0;
}

/// <summary>A cl_program.</summary>
internal sealed unsafe class OpenCLProgramHandle(OpenCLNative api, nint handle) : OpenCLHandle(api, handle, ownsHandle: true)
{
    /// <inheritdoc/>
    protected override bool ReleaseHandle() => Api.clReleaseProgram(handle) == 0;
}

/// <summary>A cl_kernel.</summary>
internal sealed unsafe class OpenCLKernelHandle(OpenCLNative api, nint handle) : OpenCLHandle(api, handle, ownsHandle: true)
{
    /// <inheritdoc/>
    protected override bool ReleaseHandle() => Api.clReleaseKernel(handle) == 0;
}

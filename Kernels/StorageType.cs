using System.Runtime.CompilerServices;

namespace GpuActivations;

/// <summary>The element types tensors may be stored in; every op computes in float32 whatever the storage.</summary>
internal enum StorageType : byte
{
    /// <summary><see cref="float"/>.</summary>
    Float32 = 0,
    /// <summary><see cref="Half"/> (IEEE binary16).</summary>
    Float16 = 1,
    /// <summary><see cref="GpuActivations.BFloat16"/>.</summary>
    BFloat16 = 2,
}

/// <summary>Maps element types to <see cref="StorageType"/>.</summary>
internal static class StorageTypes
{
    /// <summary>The storage type of <typeparamref name="T"/>, or an exception naming <paramref name="name"/> and the supported types.</summary>
    public static StorageType Of<T>(string name) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return StorageType.Float32;
        if (typeof(T) == typeof(Half)) return StorageType.Float16;
        if (typeof(T) == typeof(BFloat16)) return StorageType.BFloat16;
        throw new NotSupportedException($"{name} holds {typeof(T).Name}; tensors are stored as float, Half or BFloat16 (computed in float32).");
    }

    /// <summary>Bytes per element.</summary>
    public static int Size(this StorageType type) => type == StorageType.Float32 ? 4 : 2;
}

/// <summary>
/// A validated view as the backends receive it: its storage, element offset and length, and element type. The ops'
/// public generic signatures end here, so backends have one code path per op whatever the storage type.
/// </summary>
internal readonly record struct TensorArg(BufferStorage Storage, long Offset, long Length, StorageType Type)
{
    /// <summary>The view as a tensor argument (the caller has checked it is live and on the accelerator).</summary>
    public static TensorArg Of<T>(BufferView<T> view, [CallerArgumentExpression(nameof(view))] string name = "view") where T : unmanaged
        => new(view.Buffer.Storage, view.Offset, view.Length, StorageTypes.Of<T>(name));

    /// <summary>The address of the first element in host memory (CPU buffers).</summary>
    public unsafe nint HostPointer => Storage.Handle + (nint)(Offset * Type.Size());

    /// <summary>Whether the element type is float32.</summary>
    public bool IsFloat => Type == StorageType.Float32;
}

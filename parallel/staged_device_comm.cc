#include "parallel/staged_device_comm.h"

#include "runtime/base/status.h"

namespace strata {

char* StagedDeviceComm::Host(std::vector<char>* buffer, size_t bytes) {
  if (buffer->size() < bytes) buffer->resize(bytes);
  return buffer->data();
}

absl::Status StagedDeviceComm::AllReduceSum(float* data, size_t count) {
  float* host = reinterpret_cast<float*>(Host(&send_host_, count * sizeof(float)));
  backend_->CopyToHost(host, data, count * sizeof(float));
  RETURN_IF_ERROR(inner_->AllReduceSum(host, count));
  backend_->CopyToDevice(data, host, count * sizeof(float));
  return absl::OkStatus();
}

absl::Status StagedDeviceComm::AllGather(const float* send, float* recv, size_t count) {
  const size_t bytes = count * sizeof(float);
  float* host_send = reinterpret_cast<float*>(Host(&send_host_, bytes));
  float* host_recv = reinterpret_cast<float*>(Host(&recv_host_, bytes * size()));
  backend_->CopyToHost(host_send, send, bytes);
  RETURN_IF_ERROR(inner_->AllGather(host_send, host_recv, count));
  backend_->CopyToDevice(recv, host_recv, bytes * size());
  return absl::OkStatus();
}

absl::Status StagedDeviceComm::Send(const void* data, size_t bytes, int peer) {
  char* host = Host(&send_host_, bytes);
  backend_->CopyToHost(host, data, bytes);
  return inner_->Send(host, bytes, peer);
}

absl::Status StagedDeviceComm::Recv(void* data, size_t bytes, int peer) {
  char* host = Host(&recv_host_, bytes);
  RETURN_IF_ERROR(inner_->Recv(host, bytes, peer));
  backend_->CopyToDevice(data, host, bytes);
  return absl::OkStatus();
}

DeviceComm* DataPlaneFor(DeviceComm* comm, Backend* backend, std::unique_ptr<DeviceComm>* holder) {
  if (comm == nullptr || !comm->takes_host_memory() || backend->host_addressable()) return comm;
  *holder = std::make_unique<StagedDeviceComm>(comm, backend);
  return holder->get();
}

}  // namespace strata
